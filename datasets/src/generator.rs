//! Seeded synthetic fleets (placeholder, filled below).
