//! Inbound webhook receivers.
