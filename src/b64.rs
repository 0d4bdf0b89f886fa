//! Base64 as the SDKs send it: standard or URL-safe alphabet, padded or not.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const INDIFFERENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(false);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, INDIFFERENT);

/// Encodes as the JS SDK does: URL-safe alphabet, no padding.
pub fn encode_url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes any of the four flavours seen in the wild (Go: standard padded; JS: URL-safe
/// unpadded; Android: URL-safe padded, standard for flag keys). `None` if it is none.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.contains(['-', '_']) {
        URL_SAFE.decode(text).ok()
    } else {
        STANDARD.decode(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn all_four_flavours_decode_alike() {
        let raw = "{\"u\":\"\u{fc}?>\"}x".as_bytes();
        for text in [
            "eyJ1Ijoiw7w/PiJ9eA==", // standard, padded (Go)
            "eyJ1Ijoiw7w/PiJ9eA",   // standard, unpadded
            "eyJ1Ijoiw7w_PiJ9eA==", // URL-safe, padded (Android)
            "eyJ1Ijoiw7w_PiJ9eA",   // URL-safe, unpadded (JS)
        ] {
            assert_eq!(decode(text).as_deref(), Some(raw), "{text}");
        }
        assert_eq!(decode("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode("YQ=").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode("a+b_"), None, "mixed alphabets are not one flavour");
    }
}
