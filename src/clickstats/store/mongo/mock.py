"""A faster `$lookup` for mongomock, the in-process stand-in of tests and demos.

mongomock runs `$lookup` as one `find` over the foreign collection per input document: a search
looked up against every click costs searches x clicks document matches, which made the MongoDB
tests minutes long. This handler indexes the foreign collection once per stage and answers each
document from the index, with the same answer as mongomock's for what clickstats' pipelines
look up (a scalar local value against a top-level foreign field: equality, an array field
matching any of its elements, null matching null and missing). Anything else (a dotted foreign
field, an array local value, values that cannot be hashed) goes to mongomock's own handler.
A real server is untouched: this only replaces a handler in mongomock's stage table (and lets
mongomock's bulk builder take the ``sort`` keyword that PyMongo passes with a ReplaceOne).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

_MISSING = object()
_installed = False


def _key(value: Any) -> tuple[bool, Any]:
    # True == 1 in Python but not in MongoDB: booleans get their own keys.
    return (isinstance(value, bool), value)


def install() -> None:
    """Put the indexed handler in mongomock's stage table (once per process)."""
    global _installed
    if _installed:
        return
    from mongomock import aggregate, helpers

    original = cast(Callable[..., Any], aggregate._PIPELINE_HANDLERS["$lookup"])
    value_at = cast(Callable[[Any, str], Any], helpers.get_value_by_dot)

    def lookup(in_collection: list[dict[str, Any]], database: Any, options: dict[str, Any]) -> Any:
        original([], database, options)  # mongomock's own checks of the options
        foreign_field = options["foreignField"]
        if "." in foreign_field:
            return original(in_collection, database, options)
        index: defaultdict[tuple[bool, Any], list[dict[str, Any]]] = defaultdict(list)
        try:
            for doc in database.get_collection(options["from"]).find({}):
                value = doc.get(foreign_field)
                if isinstance(value, list):
                    seen = set()
                    for item in value:
                        if _key(item) not in seen:
                            seen.add(_key(item))
                            index[_key(item)].append(doc)
                else:
                    index[_key(value)].append(doc)
        except TypeError:  # an unhashable value (a document): mongomock's way
            return original(in_collection, database, options)
        local_field, name = options["localField"], options["as"]
        for doc in in_collection:
            try:
                value = value_at(doc, local_field)
            except KeyError:
                value = None
            if isinstance(value, list | dict):
                doc[name] = original([doc], database, options)[0][name]
                continue
            doc[name] = [copy.deepcopy(match) for match in index.get(_key(value), ())]
        return in_collection

    aggregate._PIPELINE_HANDLERS["$lookup"] = lookup
    _accept_sort()
    _installed = True


def _accept_sort() -> None:
    """PyMongo 4.11+ hands bulk_write's ReplaceOne to the bulk builder with a ``sort`` keyword
    (None unless given), which mongomock 4.3's builder does not take: drop it when None."""
    from mongomock.collection import BulkOperationBuilder

    original = cast(Callable[..., Any], BulkOperationBuilder.add_replace)

    def add_replace(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock cannot sort a ReplaceOne")
        return original(self, *args, **kwargs)

    BulkOperationBuilder.add_replace = add_replace  # type: ignore[method-assign]
