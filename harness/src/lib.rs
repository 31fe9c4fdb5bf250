//! harness: what a user's integration tests call to run the emulator and drive clients at it.
