//! What is acknowledged stays: a clean restart, kill -9 in a like storm, storage that fails
//! (injected) and a disk that really fills up.

mod crash;
mod full_disk;
mod restart;
mod storage_faults;
