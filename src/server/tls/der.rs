//! The little DER a log line needs: the end-entity certificate's serial number.

use rustls::sign::CertifiedKey;

/// The end-entity certificate's serial number in hex, read from its DER (`Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, …`).
pub(super) fn serial_hex(pair: &CertifiedKey) -> Option<String> {
    let der = pair.end_entity_cert().ok()?;
    let (_, cert) = der_element(der, 0x30)?;
    let (_, tbs) = der_element(cert, 0x30)?;
    let tbs = match der_element(tbs, 0xa0) {
        Some((rest, _version)) => rest,
        None => tbs,
    };
    let (_, serial) = der_element(tbs, 0x02)?;
    Some(serial.iter().map(|b| format!("{b:02x}")).collect())
}

/// One DER element with tag `tag` at the start of `input`: (what follows it, its contents).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let n = usize::from(len & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (&rest[len..], &rest[..len]))
}

#[cfg(test)]
mod tests {
    use super::der_element;

    #[test]
    fn der_lengths_short_and_long() {
        let short = [0x02, 0x02, 0x01, 0x02, 0xff];
        assert_eq!(der_element(&short, 0x02), Some((&[0xff][..], &[1, 2][..])));
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (rest, body) = der_element(&long, 0x30).unwrap();
        assert!(rest.is_empty());
        assert_eq!(body.len(), 0x80);
        assert_eq!(der_element(&short, 0x30), None);
        assert_eq!(der_element(&[0x02, 0x05, 1], 0x02), None);
    }
}
