//! Machine probes: FMA peak and memory bandwidth (being written).
