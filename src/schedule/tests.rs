//! Unit tests of the engine: next fire times around DST and the day rules.
