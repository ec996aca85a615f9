//! The connection state machine as a client, fed arbitrary bytes: 3 setup bytes (streaming,
//! limits, deflate, echo, close, read size; see `duplex_fuzz::Setup::from_bytes`) and the wire.
#![no_main]

use duplex_proto::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| duplex_fuzz::fuzz_connection(Role::Client, data));
