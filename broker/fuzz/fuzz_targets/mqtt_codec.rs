//! Arbitrary bytes through the MQTT codec, after a valid CONNECT of either
//! version: decoding must never panic, only return packets or errors.
#![no_main]

use bytes::BytesMut;
use fleetcore_broker::codec::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let level = if selector & 1 == 0 { 4u8 } else { 5 };
    let mut buf = BytesMut::from(
        &[
            0x10,
            12 + u8::from(level == 5),
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            level,
            2,
            0,
            10,
        ][..],
    );
    if level == 5 {
        buf.extend_from_slice(&[0]);
    }
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(rest);
    let mut codec = Codec::new(4096);
    while let Ok(Some(_)) = codec.decode(&mut buf) {}
});
