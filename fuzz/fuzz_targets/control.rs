//! The control socket's frames: a request body as the server decodes it,
//! and response frames as the client reassembles them (the bytes split
//! into frames at NUL bytes).
#![no_main]

use banmesh_node::control::protocol::{Assembler, decode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(data);
    let mut assembler = Assembler::default();
    for frame in data.split(|&b| b == 0) {
        match assembler.push(frame) {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) => {}
        }
    }
});
