//! Rooms: end-to-end encrypted group channels on MLS (RFC 9420), carried by a relay room
//! slot (docs/PROTOCOL.md, "Rooms").

pub mod mls;
