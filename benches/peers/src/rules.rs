// The rule set and the events, generated deterministically. Shared by build.rs (which
// turns the rules into the hand-written floor, `floor.rs` in OUT_DIR) and by main.rs (which
// translates them for every engine), so every engine sees exactly the same rules.
//
// Included with `include!`, not a module path, so build.rs can use it too.

/// splitmix64: a seeded, dependency-free PRNG (same sequence on every machine).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

pub const RULE_SEED: u64 = 0x5EED_0001;
pub const EVENT_SEED: u64 = 0x5EED_0002;
pub const RULES: usize = 100;

pub const COUNTRIES: [&str; 12] = ["BR", "AR", "MX", "CL", "CO", "PE", "ES", "PT", "DE", "FR", "GB", "US"];
pub const STATUSES: [&str; 5] = ["approved", "pending", "rejected", "review", "blocked"];
pub const TAGS: [&str; 8] = ["vip", "whale", "new", "dormant", "affiliate", "ib", "demo", "risky"];
pub const DOMAINS: [&str; 6] = ["@gmail.com", "@yahoo.com", "@test.com", "@corp.io", "@mail.dev", "@outlook.com"];
pub const NAMES: [&str; 12] = [
    "ana", "bruno", "carla", "diego", "elena", "felipe", "gabi", "hugo", "ines", "jose", "karla", "luis",
];
/// Regexes written without backslashes so each engine's string syntax carries them verbatim.
/// Unanchored unless anchored: every engine uses `is_match` (search) semantics.
pub const PATTERNS: [&str; 8] = [
    "^[a-f]",
    "^[a-z]+[0-9]{2}@",
    "[.](io|dev)$",
    "^(ana|hugo|ines)[.]",
    "[0-9]{3}@",
    "^[^@]+[.][^@]+@",
    "^[m-z].*@(gmail|yahoo)[.]com$",
    "(carla|diego).*@corp",
];

/// A leaf test. Field names: amount (number), country, email, status (strings), tags (list).
#[derive(Clone, Debug)]
pub enum Atom {
    /// amount >= n
    Gte(i64),
    /// status == s
    StatusEq(&'static str),
    /// country == c
    CountryEq(&'static str),
    /// country in [..]
    CountryIn(Vec<&'static str>),
    /// email ends with a domain
    EmailEndsWith(&'static str),
    /// email matches PATTERNS[i]
    EmailRegex(usize),
    /// tags contains t
    HasTag(&'static str),
}

#[derive(Clone, Debug)]
pub enum Cond {
    Atom(Atom),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
}

fn gen_atom(rng: &mut Rng) -> Atom {
    match rng.below(100) {
        0..=21 => Atom::Gte(rng.below(40) as i64 * 500),
        22..=35 => Atom::StatusEq(rng.pick(&STATUSES)),
        36..=43 => Atom::CountryEq(rng.pick(&COUNTRIES)),
        44..=59 => {
            let n = 2 + rng.below(4) as usize;
            let mut list: Vec<&'static str> = Vec::new();
            while list.len() < n {
                let c = rng.pick(&COUNTRIES);
                if !list.contains(&c) {
                    list.push(c);
                }
            }
            Atom::CountryIn(list)
        }
        60..=73 => Atom::EmailEndsWith(rng.pick(&DOMAINS)),
        74..=87 => Atom::EmailRegex(rng.below(PATTERNS.len() as u64) as usize),
        _ => Atom::HasTag(rng.pick(&TAGS)),
    }
}

fn gen_node(rng: &mut Rng, depth: u32) -> Cond {
    if depth == 0 || rng.chance(55) {
        let atom = Cond::Atom(gen_atom(rng));
        return if rng.chance(15) { Cond::Not(Box::new(atom)) } else { atom };
    }
    let group = gen_group(rng, depth);
    if rng.chance(10) {
        Cond::Not(Box::new(group))
    } else {
        group
    }
}

fn gen_group(rng: &mut Rng, depth: u32) -> Cond {
    let n = 2 + rng.below(3) as usize;
    let children = (0..n).map(|_| gen_node(rng, depth - 1)).collect();
    if rng.chance(50) {
        Cond::All(children)
    } else {
        Cond::Any(children)
    }
}

/// The 100 rules: an all/any root over 2-4 children, nested up to 3 levels below it.
pub fn rules() -> Vec<Cond> {
    let mut rng = Rng::new(RULE_SEED);
    (0..RULES).map(|_| gen_group(&mut rng, 3)).collect()
}

impl Cond {
    pub fn leaves(&self) -> usize {
        match self {
            Cond::Atom(_) => 1,
            Cond::All(c) | Cond::Any(c) => c.iter().map(Cond::leaves).sum(),
            Cond::Not(c) => c.leaves(),
        }
    }
}
