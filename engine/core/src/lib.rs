//! tandem's pure core: domain types, the field-level three-way merge, identity resolution,
//! echo suppression and retry maths. No async runtime, no I/O, no clock, no RNG: time and
//! randomness are passed in by the caller.
