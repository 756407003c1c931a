//! `export`: all state as JSON lines on stdout, a backup that `import` reads back.

use crate::store::Store;

pub(super) fn run(store: &Store) -> Result<(), String> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    store
        .export(&mut |rec| {
            serde_json::to_writer(&mut out, &rec)?;
            out.write_all(b"\n")
        })
        .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}
