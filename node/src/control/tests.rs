//! Unit tests of the control protocol: framing, versioning and chunking.

use super::*;

fn record(n: usize) -> RecordView {
    RecordView {
        key: format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255),
        kind: "ban".to_owned(),
        origin_name: Some("web1".to_owned()),
        origin_key: "ab".repeat(32),
        issued_at_ms: 1_764_075_909_000 + n as u64,
        issued_at: format!("{}.0", 1_764_075_909_000 + n as u64),
        expires_at_ms: Some(1_764_075_909_000 + 600_000),
        strikes: 1,
        jail: "sshd".to_owned(),
        reason: "5 failures in 10m".to_owned(),
        source: "fail2ban".to_owned(),
        id: "cd".repeat(32),
        valid: true,
        arrived_at_ms: None,
        arrived_from: Some("12D3KooW".to_owned()),
    }
}

/// Frames `body` as the wire does.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test]
async fn control_frame_round_trip() {
    let command = Command::Ban {
        key: "192.0.2.9/24".to_owned(),
        duration_ms: Some(600_000),
        permanent: false,
        jail: Some("sshd".to_owned()),
        reason: None,
    };
    let body = encode_request(command.clone()).expect("encode");
    let mut wire = Vec::new();
    write_frame(&mut wire, &body, MAX_REQUEST_FRAME).await.expect("write");
    assert_eq!(wire, framed(&body));
    let read = read_frame(&mut wire.as_slice(), MAX_REQUEST_FRAME).await.expect("read");
    assert_eq!(decode_request(&read).expect("decode"), command);
}

#[test]
fn control_request_json_shape() {
    let body = encode_request(Command::Unban { key: "192.0.2.7".to_owned() }).expect("encode");
    let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        value,
        serde_json::json!({"version": 1, "command": {"cmd": "unban", "key": "192.0.2.7"}})
    );
    let minimal = br#"{"version":1,"command":{"cmd":"ban","key":"192.0.2.7"}}"#;
    assert!(matches!(
        decode_request(minimal),
        Ok(Command::Ban { duration_ms: None, permanent: false, .. })
    ));
}

#[tokio::test]
async fn control_oversize_length_refused() {
    let wire = ((MAX_REQUEST_FRAME + 1) as u32).to_be_bytes();
    let error = read_frame(&mut wire.as_slice(), MAX_REQUEST_FRAME).await;
    assert!(
        matches!(error, Err(ProtocolError::TooLarge { len, max }) if len == MAX_REQUEST_FRAME + 1 && max == MAX_REQUEST_FRAME),
        "{error:?}"
    );
    let big = vec![b' '; 17];
    let mut sink = Vec::new();
    let error = write_frame(&mut sink, &big, 16).await;
    assert!(matches!(error, Err(ProtocolError::TooLarge { .. })));
    assert!(sink.is_empty(), "nothing written for a refused frame");
}

#[tokio::test]
async fn control_truncated_frame() {
    let empty: &[u8] = &[];
    let closed = read_frame(&mut &*empty, MAX_REQUEST_FRAME).await;
    assert!(matches!(closed, Err(ProtocolError::Closed)), "{closed:?}");
    let half_prefix: &[u8] = &[0, 0];
    let cut = read_frame(&mut &*half_prefix, MAX_REQUEST_FRAME).await;
    assert!(matches!(cut, Err(ProtocolError::Truncated)), "{cut:?}");
    let wire = framed(b"{\"version\":1}");
    let cut = read_frame(&mut &wire[..wire.len() - 3], MAX_REQUEST_FRAME).await;
    assert!(matches!(cut, Err(ProtocolError::Truncated)), "{cut:?}");
}

#[test]
fn control_garbage_json_refused() {
    for body in [
        &b"\xff\xfe garbage"[..],
        b"{}",
        b"[1,2]",
        br#"{"version":1,"command":{"cmd":"explode"}}"#,
        br#"{"version":1,"command":{"cmd":"ban"}}"#,
        br#"{"version":1,"command":{"cmd":"ban","key":"1.2.3.4","duration":5}}"#,
    ] {
        let error = decode_request(body);
        assert!(
            matches!(error, Err(ProtocolError::Json(_))),
            "{:?}: {error:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn control_wrong_version_names_both() {
    let body = br#"{"version":7,"command":{"cmd":"something_new"}}"#;
    let error = decode_request(body).expect_err("version 7 refused");
    assert!(matches!(error, ProtocolError::Version { got: 7, want: 1 }));
    let message = error.to_string();
    assert!(message.contains("version 7") && message.contains("version 1"), "{message}");
}

#[test]
fn control_responses_round_trip() {
    let responses = [
        Response::Peers(Vec::new()),
        Response::Written { record: record(1), notes: vec!["note".to_owned()] },
        Response::Synced { peers: vec!["a".to_owned()] },
        Response::Revoked { node: "ab".to_owned(), new: true },
        Response::error("no"),
        Response::Records(Vec::new()),
    ];
    for response in responses {
        let frames = encode_response(response.clone()).expect("encode");
        assert_eq!(frames.len(), 1, "{response:?}");
        let mut assembler = Assembler::default();
        assert_eq!(assembler.push(&frames[0]).expect("push"), Some(response));
    }
}

#[test]
fn control_records_are_chunked_and_reassembled() {
    let records: Vec<RecordView> = (0..20_000).map(record).collect();
    let frames = encode_response(Response::Records(records.clone())).expect("encode");
    assert!(frames.len() > 3, "{} frames", frames.len());
    assert!(frames.iter().all(|f| f.len() <= CHUNK_TARGET));
    let mut assembler = Assembler::default();
    let (last, chunks) = frames.split_last().expect("frames");
    for chunk in chunks {
        let frame: Frame = serde_json::from_slice(chunk).expect("a chunk is a Frame");
        assert!(matches!(frame, Frame::Chunk { .. }));
        assert_eq!(assembler.push(chunk).expect("push"), None);
    }
    let whole = assembler.push(last).expect("push").expect("reply");
    assert_eq!(whole, Response::Records(records));
}

#[test]
fn control_chunks_then_other_reply_refused() {
    let chunk = serde_json::to_vec(&Frame::Chunk { records: vec![record(1)] }).expect("json");
    let reply =
        serde_json::to_vec(&Frame::Reply { response: Box::new(Response::Peers(Vec::new())) })
            .expect("json");
    let mut assembler = Assembler::default();
    assert_eq!(assembler.push(&chunk).expect("chunk"), None);
    assert!(matches!(assembler.push(&reply), Err(ProtocolError::UnexpectedReply("peers"))));
}
