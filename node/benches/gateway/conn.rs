//! The benchmark's load generator: one keep-alive HTTP/1.1 connection per
//! worker, requests with the bench's token, answers read whole (by length
//! or chunked).

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::TOKEN;

/// One answer: status, headers we care about, body as sent.
pub struct Reply {
    pub status: u16,
    pub gzip: bool,
    pub body: Vec<u8>,
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    port: u16,
    stream: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { port, stream: BufReader::with_capacity(64 * 1024, stream) })
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        gzip: bool,
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {TOKEN}\r\n",
            self.port
        );
        if gzip {
            head.push_str("Accept-Encoding: gzip\r\n");
        }
        if method == "POST" {
            head.push_str("Content-Type: application/json\r\n");
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        self.stream.get_mut().write_all(&out).await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> std::io::Result<Reply> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        let status = status.ok_or_else(|| bad(&format!("status line {line:?}")))?;
        let (mut length, mut chunked, mut gzip) = (None, false, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(bad("closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-encoding" => gzip = value.eq_ignore_ascii_case("gzip"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad(&format!("chunk size {line:?}")))?;
                if size == 0 {
                    line.clear();
                    self.stream.read_line(&mut line).await?;
                    break;
                }
                let start = body.len();
                body.resize(start + size + 2, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                body.truncate(start + size);
            }
        } else {
            body.resize(length.ok_or_else(|| bad("neither length nor chunked"))?, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok(Reply { status, gzip, body })
    }
}
