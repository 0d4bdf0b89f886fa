//! Canonical JSON for a user object (`context` on `/v1/vardata`).
//!
//! The evaluation engine looks properties up *by name* at a few levels of the user: the
//! user object itself, `user_properties`, `groups`, and `group_properties` (type → name →
//! properties). At those levels member order cannot change an answer, and a member whose
//! value is `null` is the same as a missing one, so members are sorted and nulls dropped.
//!
//! Below those levels a value may be compared or hashed as JSON *text* (the engine
//! stringifies objects and arrays, and `1.0` and `1` print differently in some ports), so
//! every value is kept as sent: key order, nulls, array order, number spelling. Only
//! insignificant whitespace is removed, and strings (member names too, at every depth)
//! are written in one canonical form ([`super::json`]): the engine parses a value before
//! it stringifies it, so a string's escapes never reach an evaluation.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::json;

/// Why a user JSON cannot be canonicalized (the request is then not cacheable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserError {
    /// Not valid JSON.
    Invalid,
    /// Valid JSON, but not an object.
    NotObject,
    /// The same member name twice at a lookup level: ports disagree on which one wins.
    DuplicateMember,
}

impl From<json::InvalidString> for UserError {
    fn from(_: json::InvalidString) -> UserError {
        UserError::Invalid
    }
}

/// Canonicalizes a user JSON object. `Ok(None)` means the user is empty (`{}`, or only
/// null members), which is the same as sending no user at all.
pub fn canonical_user(json: &str) -> Result<Option<String>, UserError> {
    let mut out = String::with_capacity(json.len());
    let empty = write_level(&mut out, json, Level::User)?;
    Ok(if empty { None } else { Some(out) })
}

/// The lookup levels of a user object, and which of their members are lookup levels too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The user object: `user_properties`, `groups`, `group_properties` go one level deeper.
    User,
    /// A map whose member values are kept as sent (`user_properties`, `groups`, a group's properties).
    Leaf,
    /// `group_properties`: type → name → properties.
    GroupTypes,
    /// `group_properties.<type>`: name → properties.
    GroupNames,
}

impl Level {
    fn child(self, name: &str) -> Option<Level> {
        match self {
            Level::User => match name {
                "user_properties" | "groups" => Some(Level::Leaf),
                "group_properties" => Some(Level::GroupTypes),
                _ => None,
            },
            Level::GroupTypes => Some(Level::GroupNames),
            Level::GroupNames => Some(Level::Leaf),
            Level::Leaf => None,
        }
    }
}

/// Writes the canonical form of the object in `json` at `level`; returns whether it was
/// empty after dropping nulls.
fn write_level(out: &mut String, json: &str, level: Level) -> Result<bool, UserError> {
    let Members(mut members) = match serde_json::from_str::<Members>(json) {
        Ok(m) => m,
        Err(e) if e.is_data() && level == Level::User => return Err(kind_of(json)),
        Err(_) => return Err(UserError::Invalid),
    };
    // Duplicates are looked for before nulls are dropped: `{"a":1,"a":null}` is ambiguous too.
    members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if members.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(UserError::DuplicateMember);
    }
    members.retain(|(_, v)| v.get() != "null");
    out.push('{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Names are re-escaped from their decoded form: `"user_\u0069d"` is `user_id`.
        json::push_string(out, name);
        out.push(':');
        let raw = value.get();
        match level.child(name) {
            Some(child) if raw.starts_with('{') => {
                write_level(out, raw, child)?;
            }
            _ => json::canonical_value_into(out, raw)?,
        }
    }
    out.push('}');
    Ok(members.is_empty())
}

/// Tells apart "valid JSON but not an object" from "not JSON".
fn kind_of(json: &str) -> UserError {
    match serde_json::from_str::<&RawValue>(json) {
        Ok(_) => UserError::NotObject,
        Err(_) => UserError::Invalid,
    }
}

/// An object's members in document order, values left as raw JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(name) = map.next_key::<Name<'de>>()? {
                    members.push((name.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// A member name, borrowed when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        canonical_user(s).unwrap().unwrap_or_default()
    }

    #[test]
    fn lookup_levels_are_sorted_and_null_free() {
        let a = canon(
            r#"{"user_properties":{"b":1,"a":null,"c":"x"},"device_id":"d","user_id":"u","country":null}"#,
        );
        assert_eq!(
            a,
            r#"{"device_id":"d","user_id":"u","user_properties":{"b":1,"c":"x"}}"#
        );
    }

    #[test]
    fn group_levels_are_sorted() {
        let a = canon(
            r#"{"group_properties":{"org":{"acme":{"z":1,"a":2,"n":null}},"a":{}},"groups":{"org":["acme","b"],"a":null}}"#,
        );
        assert_eq!(
            a,
            r#"{"group_properties":{"a":{},"org":{"acme":{"a":2,"z":1}}},"groups":{"org":["acme","b"]}}"#
        );
    }

    #[test]
    fn values_are_kept_as_sent_without_whitespace() {
        let a = canon(
            r#"{ "user_properties" : { "o" : { "b" : 1 , "a" : null }, "n": 1.0, "e": 1e2, "s": "a b\" c", "l": [ 2 , 1 ] } }"#,
        );
        assert_eq!(
            a,
            r#"{"user_properties":{"e":1e2,"l":[2,1],"n":1.0,"o":{"b":1,"a":null},"s":"a b\" c"}}"#
        );
    }

    #[test]
    fn empty_user_is_none() {
        assert_eq!(canonical_user("{}").unwrap(), None);
        assert_eq!(canonical_user(" { \"a\" : null } ").unwrap(), None);
    }

    #[test]
    fn escaped_names_are_decoded() {
        assert_eq!(canon(r#"{"user_\u0069d":"u"}"#), r#"{"user_id":"u"}"#);
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(canonical_user("{"), Err(UserError::Invalid));
        assert_eq!(canonical_user("[1]"), Err(UserError::NotObject));
        assert_eq!(canonical_user("\"x\""), Err(UserError::NotObject));
        assert_eq!(canonical_user("{} x"), Err(UserError::Invalid));
        assert_eq!(
            canonical_user(r#"{"a":1,"a":2}"#),
            Err(UserError::DuplicateMember)
        );
        assert_eq!(
            canonical_user(r#"{"user_properties":{"a":1,"a":1}}"#),
            Err(UserError::DuplicateMember)
        );
    }

    #[test]
    fn non_object_lookup_levels_are_kept() {
        assert_eq!(
            canon(r#"{"user_properties":[1, 2]}"#),
            r#"{"user_properties":[1,2]}"#
        );
    }
}
