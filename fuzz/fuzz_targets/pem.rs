//! The PEM decoders of certificates, revocations and keys on any text:
//! never panic, and what decodes writes back to a PEM that decodes to the
//! same value.
#![no_main]

use banmesh_keys::{Certificate, PublicKey, Revocation, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cert) = Certificate::from_pem(text) {
        let again = Certificate::from_pem(&cert.to_pem().expect("writes")).expect("reads back");
        assert_eq!(again, cert);
        let _ = Certificate::from_bytes(&cert.to_bytes()).expect("bytes read back");
    }
    if let Ok(revocation) = Revocation::from_pem(text) {
        let again =
            Revocation::from_pem(&revocation.to_pem().expect("writes")).expect("reads back");
        assert_eq!(again, revocation);
    }
    if let Ok(key) = PublicKey::from_pem(text) {
        assert_eq!(PublicKey::from_pem(&key.to_pem().expect("writes")).expect("reads back"), key);
    }
    if let Ok(key) = SecretKey::from_pem(text) {
        let pem = key.to_pem().expect("writes");
        assert_eq!(SecretKey::from_pem(&pem).expect("reads back").public(), key.public());
    }
});
