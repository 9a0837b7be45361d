//! Keys from a BIP-39 mnemonic: the seed is BIP-39's (PBKDF2-HMAC-SHA512, 2048 rounds, salt `mnemonic` +
//! passphrase), ed25519 keys are derived from it by SLIP-0010 (hardened steps only, as ed25519 allows).
//!
//! Lode's path for account `i` is `m/44'/7337'/0'/0'/i'` ([`account_path`]); a wallet in another language
//! derives the same keys from the same words with any SLIP-0010 implementation. `lode devnet` derives its
//! dev accounts from [`DEVNET_MNEMONIC`] unless told otherwise, so their addresses are the same on every
//! machine.

use ed25519_consensus::SigningKey;
use hmac::{Hmac, Mac};
use sha2::Sha512;

/// The devnet's default mnemonic (public, for local development only: never hold value with it).
pub const DEVNET_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Lode's coin type in the derivation path (not registered in SLIP-0044; stated here so wallets agree).
pub const COIN_TYPE: u32 = 7337;

/// The first hardened index.
const HARDENED: u32 = 0x8000_0000;

/// Most accounts one mnemonic derives for a devnet (a bound on a command-line number).
pub const MAX_ACCOUNT_INDEX: u32 = 1 << 20;

/// Why a mnemonic was refused.
#[derive(Debug, thiserror::Error)]
pub enum MnemonicError {
    /// Not a valid BIP-39 English mnemonic (unknown word, wrong word count or checksum).
    #[error("not a BIP-39 mnemonic: {0}")]
    Invalid(String),
    /// The account index is out of range.
    #[error("account index {0} is past {MAX_ACCOUNT_INDEX}")]
    Index(u32),
}

/// The 64-byte BIP-39 seed of `words` (checked: word list and checksum) and `passphrase`.
pub fn seed(words: &str, passphrase: &str) -> Result<[u8; 64], MnemonicError> {
    let m = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, words)
        .map_err(|e| MnemonicError::Invalid(e.to_string()))?;
    Ok(m.to_seed_normalized(passphrase))
}

/// The derivation path of account `i`: `m/44'/7337'/0'/0'/i'`, every step hardened.
pub fn account_path(i: u32) -> Result<[u32; 5], MnemonicError> {
    if i >= MAX_ACCOUNT_INDEX {
        return Err(MnemonicError::Index(i));
    }
    Ok([44, COIN_TYPE, 0, 0, i])
}

/// The path as text (`m/44'/7337'/0'/0'/3'`).
pub fn path_string(path: &[u32]) -> String {
    let mut s = String::from("m");
    for p in path {
        s.push_str(&format!("/{p}'"));
    }
    s
}

fn hmac512(key: &[u8], parts: &[&[u8]]) -> ([u8; 32], [u8; 32]) {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha512> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    let out = mac.finalize().into_bytes();
    let mut k = [0u8; 32];
    let mut c = [0u8; 32];
    k.copy_from_slice(&out[..32]);
    c.copy_from_slice(&out[32..]);
    (k, c)
}

/// SLIP-0010 ed25519: the private key and chain code at `path` (each index made hardened) from `seed`.
pub fn derive(seed: &[u8], path: &[u32]) -> ([u8; 32], [u8; 32]) {
    let (mut key, mut chain) = hmac512(b"ed25519 seed", &[seed]);
    for &i in path {
        let index = (i | HARDENED).to_be_bytes();
        (key, chain) = hmac512(&chain, &[&[0u8], &key, &index]);
    }
    (key, chain)
}

/// Account `i`'s signing key from `words` and `passphrase`.
pub fn account_key(words: &str, passphrase: &str, i: u32) -> Result<SigningKey, MnemonicError> {
    seed_account_key(&seed(words, passphrase)?, i)
}

/// Account `i`'s signing key from a BIP-39 seed already computed (one PBKDF2 for many accounts).
pub fn seed_account_key(seed: &[u8; 64], i: u32) -> Result<SigningKey, MnemonicError> {
    let (key, _) = derive(seed, &account_path(i)?);
    Ok(SigningKey::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let v = hex::decode(s).expect("hex");
        v.try_into().expect("32 bytes")
    }

    /// SLIP-0010's ed25519 test vector 1 (seed 000102…0f): chain m and m/0H.
    #[test]
    fn slip10_ed25519_test_vector_1() {
        let seed = hex::decode("000102030405060708090a0b0c0d0e0f").expect("hex");
        let (k, c) = derive(&seed, &[]);
        assert_eq!(
            k,
            hex32("2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7")
        );
        assert_eq!(
            c,
            hex32("90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb")
        );
        let (k, c) = derive(&seed, &[0]);
        assert_eq!(
            k,
            hex32("68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3")
        );
        assert_eq!(
            c,
            hex32("8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69")
        );
        // The public key SLIP-0010 gives for m (without its 00 prefix).
        let (k, _) = derive(&seed, &[]);
        assert_eq!(
            SigningKey::from(k).verification_key().to_bytes(),
            hex32("a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed")
        );
    }

    /// BIP-39's first English vector (Trezor's list, passphrase `TREZOR`).
    #[test]
    fn bip39_seed_vector() {
        let words =
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                     abandon about";
        let s = seed(words, "TREZOR").expect("seed");
        assert_eq!(
            hex::encode(s),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
    }

    #[test]
    fn bad_mnemonics_and_indexes_are_refused() {
        // Checksum wrong (last word changed), unknown word, wrong count.
        for bad in [
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon lodex",
            "abandon about",
            "",
        ] {
            assert!(matches!(seed(bad, ""), Err(MnemonicError::Invalid(_))), "{bad}");
        }
        assert!(matches!(
            account_key(DEVNET_MNEMONIC, "", MAX_ACCOUNT_INDEX),
            Err(MnemonicError::Index(_))
        ));
    }

    #[test]
    fn devnet_accounts_are_fixed_and_distinct() {
        let a = account_key(DEVNET_MNEMONIC, "", 0).expect("key");
        let b = account_key(DEVNET_MNEMONIC, "", 1).expect("key");
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert_eq!(
            account_key(DEVNET_MNEMONIC, "", 0).expect("key").to_bytes(),
            a.to_bytes()
        );
        assert_eq!(
            path_string(&account_path(3).expect("path")),
            "m/44'/7337'/0'/0'/3'"
        );
    }
}
