//! Characters: a face for every DID (emoji + `adjective-noun` nickname + colour palette),
//! derived from SHA-256 of the DID so anyone computes the same face for the same agent.
//!
//! The space is 2^10 adjectives x 2^10 nouns x 2^7 emoji = 2^27 faces, 2^20 nicknames.
//! Nicknames are display names, never trust anchors: a new DID whose nickname equals a
//! pinned one is reported by [`nickname_collisions`] so a UI can demand the fingerprint.

mod words;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::did::Did;
use super::labels;

pub(crate) use words::{ADJECTIVES, NOUNS};

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Colours for drawing a character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Palette {
    /// The main colour (text of the nickname).
    pub primary: Rgb,
    /// A second colour for accents, 150 degrees around the wheel.
    pub accent: Rgb,
    /// The nearest xterm-256 colour to `primary`, for terminals without true colour.
    pub ansi256: u8,
}

/// A DID's face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Character {
    /// One emoji.
    pub emoji: &'static str,
    /// Nickname first word.
    pub adjective: &'static str,
    /// Nickname second word.
    pub noun: &'static str,
    /// Colours.
    pub palette: Palette,
}

impl Character {
    /// The character of `did`.
    pub fn of(did: &Did) -> Self {
        let h = Sha256::new().chain_update(labels::CHARACTER).chain_update(did.as_str()).finalize();
        let adjective = ADJECTIVES[usize::from(u16::from_be_bytes([h[0], h[1]]) & 0x3ff)];
        let noun = NOUNS[usize::from(u16::from_be_bytes([h[2], h[3]]) & 0x3ff)];
        let emoji = words::EMOJI[usize::from(h[4] & 0x7f)];
        let hue = f64::from(u16::from_be_bytes([h[5], h[6]])) / 65536.0 * 360.0;
        let primary = hsl(hue, 0.65, 0.55);
        let accent = hsl((hue + 150.0) % 360.0, 0.55, 0.6);
        Self { emoji, adjective, noun, palette: Palette { primary, accent, ansi256: ansi256(primary) } }
    }

    /// `adjective-noun`.
    pub fn nickname(&self) -> String {
        format!("{}-{}", self.adjective, self.noun)
    }

    /// `emoji adjective-noun`.
    pub fn face(&self) -> String {
        format!("{} {}", self.emoji, self.nickname())
    }
}

/// The known DIDs (other than `new` itself) that share `new`'s nickname.
pub fn nickname_collisions<'a>(new: &Did, known: impl IntoIterator<Item = &'a Did>) -> Vec<&'a Did> {
    let nick = Character::of(new).nickname();
    known.into_iter().filter(|d| *d != new && Character::of(d).nickname() == nick).collect()
}

fn hsl(h: f64, s: f64, l: f64) -> Rgb {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to8 = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb(to8(r), to8(g), to8(b))
}

/// Nearest colour in the xterm 6x6x6 cube.
fn ansi256(Rgb(r, g, b): Rgb) -> u8 {
    let level = |v: u8| -> u8 {
        if v < 48 {
            0
        } else if v < 115 {
            1
        } else {
            (v - 35) / 40
        }
    };
    16 + 36 * level(r) + 6 * level(g) + level(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn did(i: u8) -> Did {
        crate::proto::identity::Identity::from_secret_bytes(&[i; 32], [0; 32]).did().clone()
    }

    #[test]
    fn tables_have_the_documented_sizes_and_no_duplicates() {
        assert_eq!(ADJECTIVES.iter().collect::<HashSet<_>>().len(), 1024);
        assert_eq!(NOUNS.iter().collect::<HashSet<_>>().len(), 1024);
        assert_eq!(words::EMOJI.iter().collect::<HashSet<_>>().len(), 128);
        assert!(ADJECTIVES.iter().all(|a| !NOUNS.contains(a)));
        assert!(ADJECTIVES.windows(2).all(|w| w[0] < w[1]), "sorted, for binary search");
        assert!(NOUNS.windows(2).all(|w| w[0] < w[1]), "sorted, for binary search");
    }

    #[test]
    fn deterministic_and_spread() {
        assert_eq!(Character::of(&did(1)), Character::of(&did(1)));
        let faces: HashSet<String> = (0..=255).map(|i| Character::of(&did(i)).face()).collect();
        assert!(faces.len() > 250, "256 DIDs should give (almost) 256 faces, got {}", faces.len());
    }

    #[test]
    fn collisions_are_reported() {
        let a = did(1);
        let known = vec![did(2), did(3)];
        assert!(nickname_collisions(&a, &known).is_empty());
        // Find two DIDs with the same nickname by brute force over seeds.
        let mut seen = std::collections::HashMap::new();
        let mut pair = None;
        for i in 0..20_000u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let d = crate::proto::identity::Identity::from_secret_bytes(&seed, [0; 32]).did().clone();
            if let Some(prev) = seen.insert(Character::of(&d).nickname(), d.clone()) {
                pair = Some((prev, d));
                break;
            }
        }
        let (first, second) = pair.expect("birthday bound: a collision within 20k of 2^20 names");
        let known = vec![first.clone(), did(9)];
        assert_eq!(nickname_collisions(&second, &known), vec![&first]);
        assert!(nickname_collisions(&first, &known).is_empty(), "a DID does not collide with itself");
    }
}
