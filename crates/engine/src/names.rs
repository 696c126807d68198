//! Container ids (64 random hex digits) and names: user names are checked against docker's rule,
//! generated names are `adjective_surname` like docker's.

use crate::error::{Error, Result};

const ADJECTIVES: &[&str] = &[
    "admiring",
    "agile",
    "amazing",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "busy",
    "calm",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "exciting",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "frosty",
    "funny",
    "gallant",
    "gifted",
    "gracious",
    "happy",
    "hardcore",
    "heuristic",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bell",
    "bhabha",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brahmagupta",
    "brown",
    "cannon",
    "carson",
    "cerf",
    "chandrasekhar",
    "chebyshev",
    "clarke",
    "curie",
    "darwin",
    "dijkstra",
    "dirac",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "jennings",
    "johnson",
    "kepler",
    "knuth",
    "kowalevski",
    "lamarr",
    "leakey",
    "lovelace",
    "lumiere",
    "mahavira",
    "mayer",
    "mccarthy",
    "meitner",
    "mendel",
    "minsky",
    "morse",
    "napier",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "planck",
    "poincare",
    "ramanujan",
    "ritchie",
    "rosalind",
    "sammet",
    "shannon",
    "shockley",
    "sinoussi",
    "stallman",
    "swanson",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "villani",
    "volhard",
    "wescoff",
    "wiles",
    "williams",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if r > 0 {
            filled += r as usize;
        }
    }
    buf
}

/// A new container id: 64 lowercase hex digits, never all-numeric (docker avoids those too).
pub fn new_id() -> String {
    loop {
        let id: String = random_bytes(32)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !id[..12].bytes().all(|c| c.is_ascii_digit()) {
            return id;
        }
    }
}

/// True for a full container id: 64 lowercase hex digits.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A random `adjective_surname`.
pub fn random_name() -> String {
    let r = random_bytes(4);
    let a = ADJECTIVES[(u16::from_le_bytes([r[0], r[1]]) as usize) % ADJECTIVES.len()];
    let s = SURNAMES[(u16::from_le_bytes([r[2], r[3]]) as usize) % SURNAMES.len()];
    format!("{a}_{s}")
}

/// Checks a user-given name (`/name` accepted) against docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = n.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(Error::Invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_id(), id);
        let n = random_name();
        assert!(n.contains('_'), "{n}");
        assert!(validate_name(&n).is_ok());
        assert_eq!(validate_name("/web").unwrap(), "web");
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a").is_err());
        assert!(validate_name("a b").is_err());
    }
}
