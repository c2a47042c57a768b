//! The cluster's certificates: a CA, the API server's serving certificate, client certificates
//! for users (the admin among them) and the service-account signing key.
//!
//! The CA and the serving certificate come from rcgen. Client certificates are written here with
//! yasna because Kubernetes reads a user's groups from the subject's Organization attributes,
//! one per group, and rcgen's distinguished names hold at most one value per attribute type.

use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SigningKey,
};
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

use crate::error::Result;

/// The common name of the cluster CA.
const CA_COMMON_NAME: &str = "relman-testenv-ca";

/// X.520 commonName.
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
/// X.520 organizationName.
const OID_ORGANIZATION: &[u64] = &[2, 5, 4, 10];
/// ecdsa-with-SHA256, the algorithm of every key generated here.
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
/// Extension: key usage.
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
/// Extension: basic constraints.
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
/// Extension: extended key usage.
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
/// Extended key usage: TLS client authentication.
const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

/// Client certificates are valid from 2000 to the end of 2049 (the UTCTime range), which is
/// longer than any test or demo cluster lives.
const NOT_BEFORE: &[u8] = b"000101000000Z";
const NOT_AFTER: &[u8] = b"491231235959Z";

/// A PEM certificate with its PEM (PKCS#8) private key.
#[derive(Clone, Debug)]
pub(crate) struct CertAndKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

/// The cluster's certificate authority and service-account signing key.
pub(crate) struct Pki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca: CertAndKey,
    service_account: KeyPair,
}

impl Pki {
    /// Generates a fresh CA and service-account key.
    pub(crate) fn generate() -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let ca = CertAndKey {
            cert_pem: ca_params.self_signed(&ca_key)?.pem(),
            key_pem: ca_key.serialize_pem(),
        };
        Ok(Self {
            ca_params,
            ca_key,
            ca,
            service_account: KeyPair::generate()?,
        })
    }

    /// The CA certificate and key.
    pub(crate) fn ca(&self) -> &CertAndKey {
        &self.ca
    }

    /// The service-account signing key (PEM), used by the API server and the controller manager.
    pub(crate) fn service_account_key_pem(&self) -> String {
        self.service_account.serialize_pem()
    }

    /// The public half of the service-account signing key (PEM), to verify tokens with.
    pub(crate) fn service_account_public_key_pem(&self) -> String {
        self.service_account.public_key_pem()
    }

    /// A TLS serving certificate for `names` (DNS names or IP addresses).
    pub(crate) fn serving_cert(&self, common_name: &str, names: &[&str]) -> Result<CertAndKey> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        Ok(CertAndKey {
            cert_pem: params.signed_by(&key, &issuer)?.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate for `user` in `groups`: subject CN=user, one O per group.
    pub(crate) fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertAndKey> {
        let key = KeyPair::generate()?;
        let tbs = yasna::construct_der(|w| write_client_tbs(w, user, groups, &key));
        let signature = self.ca_key.sign(&tbs)?;
        let der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                write_algorithm(w.next());
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
            })
        });
        Ok(CertAndKey {
            cert_pem: to_pem("CERTIFICATE", &der),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes the to-be-signed part of a client certificate (RFC 5280, section 4.1).
fn write_client_tbs(w: DERWriter, user: &str, groups: &[&str], key: &KeyPair) {
    w.write_sequence(|w| {
        w.next().write_tagged(Tag::context(0), |w| w.write_u8(2)); // v3
        w.next().write_u64(serial_number());
        write_algorithm(w.next());
        write_name(w.next(), &[(OID_COMMON_NAME, CA_COMMON_NAME)]);
        w.next().write_sequence(|w| {
            write_utc_time(w.next(), NOT_BEFORE);
            write_utc_time(w.next(), NOT_AFTER);
        });
        let mut subject = vec![(OID_COMMON_NAME, user)];
        subject.extend(groups.iter().map(|g| (OID_ORGANIZATION, *g)));
        write_name(w.next(), &subject);
        w.next().write_der(&key.subject_public_key_info());
        w.next()
            .write_tagged(Tag::context(3), write_client_extensions);
    });
}

/// Key usage digitalSignature, extended key usage clientAuth, not a CA.
fn write_client_extensions(w: DERWriter) {
    w.write_sequence(|w| {
        write_extension(w.next(), OID_KEY_USAGE, true, |w| {
            w.write_bitvec_bytes(&[0x80], 1);
        });
        write_extension(w.next(), OID_EXT_KEY_USAGE, false, |w| {
            w.write_sequence(|w| w.next().write_oid(&oid(OID_CLIENT_AUTH)));
        });
        write_extension(w.next(), OID_BASIC_CONSTRAINTS, true, |w| {
            w.write_sequence(|_| {});
        });
    });
}

/// An X.509 extension whose value `value` writes.
fn write_extension(w: DERWriter, id: &[u64], critical: bool, value: impl FnOnce(DERWriter)) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(id));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(&yasna::construct_der(value));
    });
}

/// A distinguished name with one attribute per relative distinguished name, encoded the way
/// rcgen encodes names (UTF8String values) so that the issuer matches the CA's subject.
fn write_name(w: DERWriter, attributes: &[(&[u64], &str)]) {
    w.write_sequence(|w| {
        for (id, value) in attributes {
            w.next().write_set(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(id));
                    w.next().write_utf8_string(value);
                });
            });
        }
    });
}

/// The ecdsa-with-SHA256 algorithm identifier (no parameters).
fn write_algorithm(w: DERWriter) {
    w.write_sequence(|w| w.next().write_oid(&oid(OID_ECDSA_SHA256)));
}

/// A UTCTime from its `YYMMDDHHMMSSZ` text.
fn write_utc_time(w: DERWriter, text: &[u8]) {
    w.write_tagged_implicit(yasna::tags::TAG_UTCTIME, |w| w.write_bytes(text));
}

fn oid(components: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(components)
}

/// A positive serial number that differs between certificates minted by one process.
fn serial_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    (nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(48)) >> 1
}

/// PEM armour for `der`.
fn to_pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_of(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn client_certificate_issuer_is_the_ca_subject() {
        let pki = Pki::generate().unwrap();
        let issuer = yasna::construct_der(|w| write_name(w, &[(OID_COMMON_NAME, CA_COMMON_NAME)]));
        assert!(contains(&der_of(&pki.ca().cert_pem), &issuer));
        let client = pki.client_cert("alice", &["a", "b"]).unwrap();
        assert!(contains(&der_of(&client.cert_pem), &issuer));
    }

    #[test]
    fn client_certificate_carries_every_group() {
        let pki = Pki::generate().unwrap();
        let client = pki
            .client_cert("alice", &["release-managers", "system:authenticated"])
            .unwrap();
        let der = der_of(&client.cert_pem);
        assert!(contains(&der, b"alice"));
        assert!(contains(&der, b"release-managers"));
        assert!(contains(&der, b"system:authenticated"));
    }
}
