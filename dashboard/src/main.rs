//! `aurum-dashboard`: the gold datamarts in a browser (issue "The dashboard").
//! Not built yet: this crate holds the workspace's place for it, as the layout
//! in CONVENTIONS.md fixes, and does nothing when run.

fn main() {}
