"""Words for numbers: the one place that decides "1 user" against "2 users"."""

from __future__ import annotations

from collections.abc import Sequence


def plural(count: float, singular: str, plural_form: str | None = None) -> str:
    """'1 user', '2 users', '1,500 searches', '1 search with a click': the count with thousands
    separators, and the phrase (its first word) in the form that agrees with it."""
    number = f"{int(count):,}" if float(count).is_integer() else f"{count:,g}"
    if count == 1:
        return f"{number} {singular}"
    if plural_form is None:
        head, _, rest = singular.partition(" ")
        plural_form = _plural(head) + (f" {rest}" if rest else "")
    return f"{number} {plural_form}"


def _plural(word: str) -> str:
    # The nouns our sentences count: users, searches, clicks, variants, results.
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def was_were(count: float) -> str:
    return "was" if count == 1 else "were"


def join_names(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
