//! SOQL parser properties: printing a query and parsing it back gives the same tree.

#![allow(clippy::unwrap_used)]

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use salesforce_sim::soql::{self, CmpOp, Cond, DateLiteral, Literal, OrderItem, Query, Select};

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Id".to_owned()),
        Just("Email".to_owned()),
        Just("SystemModstamp".to_owned()),
        "[A-Z][a-z]{1,8}(__c)?".prop_filter("not a keyword", |s| {
            ![
                "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY",
                "LIMIT", "OFFSET", "ASC", "DESC", "NULLS", "NULL", "TRUE", "FALSE", "COUNT",
            ]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(s))
        }),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (-1_000_000i64..1_000_000).prop_map(|n| Literal::Number(n as f64 / 100.0)),
        "[ -~]{0,12}".prop_map(Literal::Str),
        (1990i32..2040, 1u32..13, 1u32..29)
            .prop_map(|(y, m, d)| Literal::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())),
        (0i64..2_000_000_000, 0i64..1000).prop_map(|(s, ms)| Literal::DateTime(
            Utc.timestamp_millis_opt(s * 1000 + ms).unwrap()
        )),
        prop_oneof![
            Just(DateLiteral::Today),
            Just(DateLiteral::Yesterday),
            Just(DateLiteral::Tomorrow),
            (0u32..400).prop_map(DateLiteral::LastNDays),
            (0u32..400).prop_map(DateLiteral::NextNDays),
        ]
        .prop_map(Literal::Relative),
    ]
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Gt),
        Just(CmpOp::Le),
        Just(CmpOp::Ge)
    ]
}

fn cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![
        (ident(), op(), literal()).prop_map(|(field, op, value)| Cond::Cmp { field, op, value }),
        (
            ident(),
            any::<bool>(),
            prop::collection::vec(literal(), 1..4)
        )
            .prop_map(|(field, negated, values)| Cond::In {
                field,
                negated,
                values
            }),
        (ident(), "[a-z%_]{0,8}").prop_map(|(field, pattern)| Cond::Like { field, pattern }),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::Or),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    (
        prop_oneof![
            Just(Select::Count),
            prop::collection::vec(ident(), 1..5).prop_map(Select::Fields)
        ],
        ident(),
        prop::option::of(cond()),
        prop::collection::vec(
            (ident(), any::<bool>(), prop::option::of(any::<bool>())).prop_map(
                |(field, descending, nulls_first)| OrderItem {
                    field,
                    descending,
                    nulls_first,
                },
            ),
            0..3,
        ),
        prop::option::of(0u64..5000),
        prop::option::of(0u64..2000),
    )
        .prop_map(|(select, from, condition, order_by, limit, offset)| Query {
            select,
            from,
            condition,
            order_by,
            limit,
            offset,
        })
}

proptest! {
    #[test]
    fn printing_a_query_and_parsing_it_back_gives_the_same_query(q in query()) {
        let text = q.to_string();
        let back = soql::parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&q), "{}", text);
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_text(s in "[ -~]{0,80}") {
        let parsed = soql::parse(&s);
        prop_assert!(parsed.is_ok() || parsed.is_err());
    }
}
