//! Operating the binary: its command line, and running it as a systemd service with JSON logs.

mod cli;
mod service;
