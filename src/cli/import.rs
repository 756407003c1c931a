//! `import`: JSON lines from stdin (what `export` wrote) into a data directory.

use crate::store::Store;

pub(super) async fn run(store: &Store, force: bool) -> Result<(), String> {
    use std::io::BufRead;
    if !force && !store.is_empty() {
        return Err("the data directory already holds state; import into an empty one, or pass --force".into());
    }
    let mut n = 0u64;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: crate::store::backup::Record =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))?;
        store.import(&rec).map_err(|e| format!("line {}: {e}", i + 1))?;
        n += 1;
    }
    store.durable().await.map_err(|e| e.to_string())?;
    eprintln!("imported {n} records");
    Ok(())
}
