use super::*;

fn spec(dummy: bool, remove: bool, escape: bool, charsmap: Vec<u8>) -> NormalizerSpec {
    NormalizerSpec {
        name: String::new(),
        precompiled_charsmap: charsmap,
        add_dummy_prefix: dummy,
        remove_extra_whitespaces: remove,
        escape_whitespaces: escape,
        normalization_rule_tsv: String::new(),
    }
}

fn norm(spec: &NormalizerSpec, suffix: bool, user: &[&str], input: &[u8]) -> String {
    let user: Vec<String> = user.iter().map(|s| s.to_string()).collect();
    Normalizer::new(spec, suffix, &user)
        .unwrap()
        .normalize(input)
}

/// A darts-clone-layout double array for `rules` (each node gets its own 256-unit block; free
/// units carry a label that never matches, as darts-clone's builder leaves them), followed by
/// the replacement strings: a valid `precompiled_charsmap`.
fn charsmap(rules: &[(&str, &str)]) -> Vec<u8> {
    let mut blob = Vec::new();
    let mut keys: Vec<(Vec<u8>, u32)> = Vec::new();
    for (from, to) in rules {
        keys.push((from.as_bytes().to_vec(), blob.len() as u32));
        blob.extend_from_slice(to.as_bytes());
        blob.push(0);
    }
    let mut units: Vec<u32> = Vec::new();
    fn fresh(units: &mut Vec<u32>) -> usize {
        let base = units.len().max(256);
        units.resize(base + 256, 0);
        for (i, u) in units[base..].iter_mut().enumerate() {
            *u = (i as u32) ^ 1; // label that never equals the byte looked up here
        }
        base
    }
    // Node at `pos` whose children (keys with prefix `prefix`) go in a fresh block.
    fn place(units: &mut Vec<u32>, pos: usize, prefix: &[u8], keys: &[(Vec<u8>, u32)]) {
        let block = fresh(units);
        let label = units[pos] & 0xFF;
        let leaf = keys.iter().find(|(k, _)| k == prefix);
        units[pos] = (((pos ^ block) as u32) << 10) | ((leaf.is_some() as u32) << 8) | label;
        if let Some((_, v)) = leaf {
            units[block] = v | (1 << 31);
        }
        let mut next: Vec<u8> = keys
            .iter()
            .filter(|(k, _)| k.len() > prefix.len() && k.starts_with(prefix))
            .map(|(k, _)| k[prefix.len()])
            .collect();
        next.dedup();
        for b in next {
            let child = block ^ b as usize;
            units[child] = b as u32;
            let mut p = prefix.to_vec();
            p.push(b);
            place(units, child, &p, keys);
        }
    }
    keys.sort();
    units.resize(256, 0);
    place(&mut units, 0, b"", &keys);
    let mut out = ((units.len() * 4) as u32).to_le_bytes().to_vec();
    for u in units {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out.extend_from_slice(&blob);
    out
}

#[test]
fn default_whitespace_rules() {
    let s = spec(true, true, true, vec![]);
    assert_eq!(
        norm(&s, false, &[], b"  hello   world  "),
        "\u{2581}hello\u{2581}world"
    );
    assert_eq!(norm(&s, false, &[], b"   "), "");
    assert_eq!(norm(&s, false, &[], b""), "");
    // Trailing U+2581 from the input is stripped like an escaped space.
    assert_eq!(
        norm(&s, false, &[], "a\u{2581}\u{2581}".as_bytes()),
        "\u{2581}a"
    );
    assert_eq!(norm(&s, false, &[], " \u{2581}".as_bytes()), "");
    // Only ASCII space is whitespace without a charsmap.
    assert_eq!(norm(&s, false, &[], b"a\tb\n"), "\u{2581}a\tb\n");
    assert!(Normalizer::new(&s, false, &[]).unwrap().is_identity());
}

#[test]
fn flags_flipped() {
    let keep = spec(true, false, true, vec![]);
    assert_eq!(
        norm(&keep, false, &[], b"  a  b "),
        "\u{2581}\u{2581}\u{2581}a\u{2581}\u{2581}b\u{2581}"
    );
    let no_dummy = spec(false, true, true, vec![]);
    assert_eq!(norm(&no_dummy, false, &[], b" a  b "), "a\u{2581}b");
    let raw = spec(true, true, false, vec![]);
    assert_eq!(norm(&raw, false, &[], b" a  b "), " a b");
    let s = spec(true, true, true, vec![]);
    assert_eq!(norm(&s, true, &[], b" a  b "), "a\u{2581}b\u{2581}");
    assert_eq!(norm(&s, true, &[], b"  "), "");
}

#[test]
fn invalid_utf8_is_one_replacement_per_byte() {
    let s = spec(true, true, true, vec![]);
    assert_eq!(norm(&s, false, &[], b"a\xffb"), "\u{2581}a\u{FFFD}b");
    assert_eq!(
        norm(&s, false, &[], b"\xe4\xb8"),
        "\u{2581}\u{FFFD}\u{FFFD}"
    );
    assert_eq!(
        norm(&s, false, &[], b"\xed\xa0\x80"),
        "\u{2581}\u{FFFD}\u{FFFD}\u{FFFD}"
    ); // surrogate
    assert_eq!(
        norm(&s, false, &[], b"\xc0\xaf"),
        "\u{2581}\u{FFFD}\u{FFFD}"
    ); // overlong
    assert_eq!(
        norm(&s, false, &[], b"\xf4\x90\x80\x80x"),
        "\u{2581}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}x"
    );
    assert_eq!(
        norm(&s, false, &[], "\u{FFFD}".as_bytes()),
        "\u{2581}\u{FFFD}"
    );
}

#[test]
fn charsmap_rules_longest_match_and_spaces() {
    let cm = charsmap(&[
        ("A", "a"),
        ("AB", "x"),
        ("\t", " "),
        ("\u{1}", ""),
        ("\u{3000}", " "),
        ("F", "f f "),
    ]);
    let s = spec(true, true, true, cm);
    let n = Normalizer::new(&s, false, &[]).unwrap();
    assert!(!n.is_identity());
    assert_eq!(n.normalize(b"ABA"), "\u{2581}xa");
    // Tab and ideographic space become spaces and collapse; a removed control char does not
    // reset the "previous was a space" state.
    assert_eq!(
        n.normalize("\t\u{3000}a \u{1} \tb\t".as_bytes()),
        "\u{2581}a\u{2581}b"
    );
    // Spaces inside a replacement are escaped; its trailing space merges with the next one.
    assert_eq!(n.normalize(b"F F"), "\u{2581}f\u{2581}f\u{2581}f\u{2581}f");
    // A leading step that normalizes to "f f " is not a lone space: kept.
    assert_eq!(n.normalize(b"\x01F"), "\u{2581}f\u{2581}f");
}

#[test]
fn user_defined_symbols_are_not_normalized() {
    let cm = charsmap(&[("A", "a"), ("<", "[")]);
    let s = spec(true, true, true, cm);
    assert_eq!(
        norm(&s, false, &["<A>", "<A>>"], b"<A>> <A> A<"),
        "\u{2581}<A>>\u{2581}<A>\u{2581}a["
    );
    let id = spec(true, true, true, vec![]);
    assert!(!Normalizer::new(&id, false, &["x".into()])
        .unwrap()
        .is_identity());
}

#[test]
fn normalize_into_appends() {
    let s = spec(true, true, true, vec![]);
    let n = Normalizer::new(&s, false, &[]).unwrap();
    let mut out = String::from("\u{2581}");
    n.normalize_into(b"  ", &mut out);
    n.normalize_into(b"a ", &mut out);
    assert_eq!(out, "\u{2581}\u{2581}a");
}

#[test]
fn corrupt_charsmap_is_an_error() {
    let s = spec(true, true, true, vec![200, 0, 0, 0, 1]);
    let err = Normalizer::new(&s, false, &[]).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn arbitrary_bytes_never_panic_and_stay_utf8() {
    let cm = charsmap(&[("A", "a"), ("\u{e9}", "e\u{301}"), ("\u{3000}", " ")]);
    let specs = [
        spec(true, true, true, cm.clone()),
        spec(false, false, false, cm),
        spec(true, true, true, vec![]),
    ];
    let mut x = 12345u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                [b' ', b'A', 0xC3, 0xA9, 0xE3, 0x80, 0x80, 0xFF, b'\t', 0][(x >> 60) as usize % 10]
            })
            .collect();
        for s in &specs {
            let out = norm(s, len % 2 == 0, &["A\u{e9}"], &bytes);
            assert!(std::str::from_utf8(out.as_bytes()).is_ok());
        }
    }
}

#[test]
fn identity_bulk_path_equals_step_by_step() {
    let mut x = 99u64;
    let frags: [&[u8]; 12] = [
        b" ",
        b"  ",
        b"a",
        b"\xe4\xb8\xad",
        b"\xe4\xb8",
        b"\xff",
        b"\xc0\xaf",
        b"\t",
        b"\xf0\x9f\x98\x80",
        b"\xed\xa0\x80",
        "\u{2581}".as_bytes(),
        b"\x80",
    ];
    for len in 0..400 {
        let mut input = Vec::new();
        for _ in 0..len % 40 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            input.extend_from_slice(frags[(x >> 59) as usize % frags.len()]);
        }
        for (remove, escape) in [(true, true), (false, true), (true, false), (false, false)] {
            let n = Normalizer::new(&spec(true, remove, escape, vec![]), false, &[]).unwrap();
            assert!(n.is_identity());
            let ws: &[u8] = if escape { SPACE_SYMBOL } else { b" " };
            let (mut bulk, mut steps) = (Vec::new(), Vec::new());
            Normalizer::identity_body(&input, remove, ws, &mut bulk);
            n.general_body(&input, &mut steps);
            assert_eq!(
                bulk, steps,
                "input {input:?} remove {remove} escape {escape}"
            );
        }
    }
}
