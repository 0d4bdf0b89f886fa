//! Evaluation order: every flag after the flags it depends on.
//!
//! As the JS `topologicalSort`: start from the requested flags in request order (or every
//! flag), walk each one's `dependencies` depth-first, emit parents first, emit each flag
//! once, skip unknown keys and missing parents, and fail on a cycle. Parents that were not
//! requested are evaluated (and returned) too.

/// Computes the evaluation order over flag indices. `deps[i]` are flag `i`'s parents,
/// already resolved to indices (`None` for a parent that does not exist), `key(i)` its
/// key (for the cycle message). On a cycle, returns the JS engine's message.
pub fn order<'k>(
    deps: &[Vec<Option<usize>>],
    key: impl Fn(usize) -> &'k str,
    start: impl IntoIterator<Item = usize>,
) -> Result<Vec<usize>, String> {
    let mut emitted = vec![false; deps.len()];
    let mut out = Vec::with_capacity(deps.len());
    // The flags being walked, with the index of the next parent to look at. It doubles as
    // the JS `path` for cycle detection; explicit so a long chain cannot overflow the stack.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut on_stack = vec![false; deps.len()];
    for flag in start {
        if emitted[flag] {
            continue;
        }
        if deps[flag].is_empty() {
            emitted[flag] = true;
            out.push(flag);
            continue;
        }
        stack.push((flag, 0));
        on_stack[flag] = true;
        while let Some(top) = stack.last_mut() {
            let (current, next) = *top;
            let Some(parent) = deps[current].get(next) else {
                emitted[current] = true;
                on_stack[current] = false;
                out.push(current);
                stack.pop();
                continue;
            };
            top.1 += 1;
            let Some(parent) = *parent else { continue };
            if on_stack[parent] {
                let path: Vec<&str> = stack.iter().map(|&(f, _)| key(f)).collect();
                return Err(format!(
                    "Detected a cycle between flags {}",
                    path.join(", ")
                ));
            }
            if emitted[parent] {
                continue;
            }
            if deps[parent].is_empty() {
                emitted[parent] = true;
                out.push(parent);
            } else {
                stack.push((parent, 0));
                on_stack[parent] = true;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::order;

    /// Builds the inputs from `(key, [parent keys])` and runs the sort from `start` keys.
    fn sort(flags: &[(&str, &[&str])], start: &[&str]) -> Result<Vec<String>, String> {
        let keys: Vec<&str> = flags.iter().map(|(k, _)| *k).collect();
        let index = |k: &str| keys.iter().position(|x| *x == k);
        let deps: Vec<Vec<Option<usize>>> = flags
            .iter()
            .map(|(_, ps)| ps.iter().map(|p| index(p)).collect())
            .collect();
        let start = start.iter().filter_map(|k| index(k));
        order(&deps, |i| keys[i], start)
            .map(|o| o.into_iter().map(|i| keys[i].to_string()).collect())
    }

    #[test]
    fn parents_come_first_and_once() {
        let flags: &[(&str, &[&str])] =
            &[("c", &["a", "b"]), ("b", &["a"]), ("a", &[]), ("d", &[])];
        assert_eq!(
            sort(flags, &["c", "b", "a", "d"]).unwrap(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(sort(flags, &["d", "b"]).unwrap(), ["d", "a", "b"]);
        assert_eq!(
            sort(flags, &["b", "b", "x"]).unwrap(),
            ["a", "b"],
            "duplicates and unknown keys"
        );
        assert_eq!(sort(flags, &[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn missing_parents_are_ignored() {
        let flags: &[(&str, &[&str])] = &[("a", &["gone", "b"]), ("b", &["also-gone"])];
        assert_eq!(sort(flags, &["a"]).unwrap(), ["b", "a"]);
    }

    #[test]
    fn cycles_fail_with_the_path() {
        let flags: &[(&str, &[&str])] =
            &[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["d"])];
        assert_eq!(
            sort(flags, &["a"]).unwrap_err(),
            "Detected a cycle between flags a, b, c"
        );
        assert_eq!(
            sort(flags, &["b"]).unwrap_err(),
            "Detected a cycle between flags b, c, a"
        );
        assert_eq!(
            sort(flags, &["d"]).unwrap_err(),
            "Detected a cycle between flags d"
        );
    }

    #[test]
    fn diamond_and_deep_chain() {
        let flags: &[(&str, &[&str])] = &[
            ("top", &["l", "r"]),
            ("l", &["base"]),
            ("r", &["base"]),
            ("base", &[]),
        ];
        assert_eq!(sort(flags, &["top"]).unwrap(), ["base", "l", "r", "top"]);
        let n = 20_000;
        let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let deps: Vec<Vec<Option<usize>>> = (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![Some(i - 1)] })
            .collect();
        let out = order(&deps, |i| key_refs[i], [n - 1]).unwrap();
        assert_eq!(out.len(), n);
        assert_eq!(out[0], 0);
    }
}
