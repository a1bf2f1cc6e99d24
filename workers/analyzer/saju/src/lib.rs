//! The saju (four pillars, 사주) engine: a pure library with no I/O.
