//! Two modules that import each other: the cycle the check must catch.

pub mod a {
    pub struct A;
    pub fn make_b() -> crate::b::B {
        crate::b::B
    }
}

pub mod b {
    pub struct B;
    pub fn make_a() -> crate::a::A {
        crate::a::A
    }
}
