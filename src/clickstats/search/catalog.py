"""The sample product catalog, its query vocabulary, and the ground-truth relevance of each pair.

Everything is generated from one seed with `random.Random`, so the server, the simulator and a
notebook all see the same products. A product has visible attributes (title, category, brand,
color, price, rating) and one hidden one, `quality` in [0, 1], which only the ground truth
reads; the visible rating is a noisy reading of it. Titles are written the way shops write
them: the brand, the color, the style and the features are often left out, and the product is
often called by another name ("Trainers", "Daypack"). Accessories ("Shoe Laces", "Tent Stakes")
share words with the products they serve and are relevant to no query.

Ground truth, `relevance(query, product)`, graded 0..3 (docs/SEARCH.md):

- 0: not in the query's category;
- 1: in the category, but misses an attribute the query names (style, color, brand or feature);
- 2: in the category, and has every attribute the query names;
- 3: as 2, and a good product: hidden quality >= GOOD_QUALITY.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

DEFAULT_SEED = 20261128
DEFAULT_SIZE = 3000
#: Hidden quality from which a fully matching product is "perfect" (grade 3).
GOOD_QUALITY = 0.6
MAX_GRADE = 3
ACCESSORIES = "accessories"

Grades = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    #: how shoppers ask for it ("shoes"), and what titles call it (the first is the same word)
    nouns: tuple[str, ...]
    styles: tuple[str, ...]
    features: tuple[str, ...]
    price: tuple[float, float]
    share: float

    @property
    def noun(self) -> str:
        return self.nouns[0]


CATEGORIES = (
    Category("shoes", ("shoes", "sneakers", "trainers", "footwear"),
             ("running", "trail", "walking", "tennis"),
             ("waterproof", "lightweight", "breathable", "cushioned"), (35, 190), 1.4),
    Category("boots", ("boots", "booties", "chukkas", "wellies"),
             ("hiking", "winter", "work", "rain"),
             ("waterproof", "insulated", "leather"), (50, 260), 1.0),
    Category("jackets", ("jacket", "parka", "anorak", "shell", "windbreaker"),
             ("rain", "ski", "down", "fleece"),
             ("waterproof", "insulated", "packable", "windproof"), (40, 380), 1.3),
    Category("backpacks", ("backpack", "daypack", "rucksack", "pack"),
             ("hiking", "laptop", "travel", "school"),
             ("waterproof", "lightweight", "rolltop"), (25, 220), 1.1),
    Category("shirts", ("shirt", "tee", "polo", "top"),
             ("running", "graphic", "linen", "flannel"),
             ("organic", "breathable", "stretch"), (10, 70), 1.2),
    Category("pants", ("pants", "trousers", "joggers", "chinos"),
             ("hiking", "yoga", "cargo", "running"),
             ("stretch", "waterproof", "slim"), (25, 140), 1.0),
    Category("headphones", ("headphones", "earbuds", "headset", "earphones"),
             ("studio", "gaming", "sport", "travel"),
             ("wireless", "bluetooth", "foldable"), (20, 400), 0.9),
    Category("watches", ("watch", "smartwatch", "timepiece", "chronograph"),
             ("sport", "dive", "dress", "fitness"),
             ("waterproof", "solar", "gps"), (40, 600), 0.8),
    Category("sunglasses", ("sunglasses", "shades", "sunnies"),
             ("aviator", "sport", "round", "wayfarer"),
             ("polarized", "lightweight"), (15, 250), 0.6),
    Category("tents", ("tent", "shelter", "dome"),
             ("camping", "backpacking", "family", "beach"),
             ("waterproof", "lightweight", "freestanding"), (60, 700), 0.7),
)  # fmt: skip

#: Accessories: they share a word with a category's products, and no query wants them.
ACCESSORY_TITLES = (
    "Shoe Laces", "Shoe Cleaning Kit", "Shoe Rack", "Boot Dryer", "Boot Laces",
    "Jacket Hanger", "Backpack Rain Cover", "Backpack Straps", "Shirt Folding Board",
    "Pants Hanger", "Headphone Stand", "Headphones Case", "Watch Strap", "Watch Winder",
    "Sunglasses Case", "Sunglasses Strap", "Tent Stakes", "Tent Footprint",
)  # fmt: skip
ACCESSORY_SHARE = 0.08
ACCESSORY_PRICE = (4.0, 45.0)

COLORS = ("black", "white", "red", "blue", "navy", "green", "grey", "orange", "yellow", "brown")
COLOR_WEIGHTS = (6, 3, 2, 3, 2, 2, 3, 1, 1, 1)
#: colors with a query of their own ("red shoes")
QUERY_COLORS = ("black", "white", "red", "blue", "green", "grey")

BRANDS = (
    "northpeak", "alpina", "kestrel", "solace", "vantage", "tern", "lumen", "ostro",
    "cobalt", "fjell", "mistral", "arbor", "quill", "zephyr", "basalt", "halcyon",
    "juniper", "orca", "pico", "sable", "trove", "umbra", "verve", "wren",
)  # fmt: skip
BRANDS_PER_CATEGORY = 8
MODEL_WORDS = ("Pro", "Lite", "2", "X", "Classic", "Evo", "Max", "Plus", "Air", "Trek")

#: How often a title shows each attribute (the catalog always knows them).
P_BRAND_IN_TITLE = 0.6
P_COLOR_IN_TITLE = 0.6
P_STYLE_IN_TITLE = 0.7
P_FEATURE_IN_TITLE = 0.6
P_CANONICAL_NOUN = 0.45
P_FEATURE = 0.3
RATING_NOISE = 0.45

#: Base popularity of each kind of query; users' habits multiply it.
POPULARITY = {"category": 10.0, "style": 4.0, "feature": 3.0, "color": 2.0, "brand": 2.0}
COMBO_POPULARITY = 1.0
#: A query is kept only if at least this many products match it fully (grade >= 2).
MIN_MATCHES = 3


@dataclass(frozen=True, slots=True)
class Product:
    index: int
    id: str
    title: str
    category: str
    brand: str
    color: str
    style: str | None
    features: frozenset[str]
    price: float
    rating: float
    #: hidden ground truth: only relevance() reads it
    quality: float

    @property
    def display_brand(self) -> str:
        return self.brand.title()


@dataclass(frozen=True, slots=True)
class Query:
    """A search intent: its text and the attributes it asks for (None: any)."""

    text: str
    category: str
    style: str | None = None
    color: str | None = None
    brand: str | None = None
    feature: str | None = None
    popularity: float = 1.0


def relevance(query: Query, product: Product) -> int:
    """The graded ground truth, 0..3 (module docstring)."""
    if product.category != query.category:
        return 0
    if (
        (query.style is not None and product.style != query.style)
        or (query.color is not None and product.color != query.color)
        or (query.brand is not None and product.brand != query.brand)
        or (query.feature is not None and query.feature not in product.features)
    ):
        return 1
    return 3 if product.quality >= GOOD_QUALITY else 2


def product_id(index: int) -> str:
    return f"sku-{index + 1:05d}"


def _codes(values: Iterable[str | None]) -> tuple[dict[str, int], npt.NDArray[np.int16]]:
    values = list(values)
    vocabulary = {v: i for i, v in enumerate(sorted({v for v in values if v is not None}))}
    return vocabulary, np.array([vocabulary.get(v, -1) if v else -1 for v in values], np.int16)


class Catalog:
    """The products, the query vocabulary, and vectorised ground truth over both."""

    def __init__(self, products: Sequence[Product], seed: int) -> None:
        self.seed = seed
        self.products: tuple[Product, ...] = tuple(products)
        self._by_id = {p.id: p for p in self.products}
        self._category_code, self.category_codes = _codes(p.category for p in self.products)
        self._brand_code, self.brand_codes = _codes(p.brand for p in self.products)
        self._color_code, self.color_codes = _codes(p.color for p in self.products)
        self._style_code, self.style_codes = _codes(p.style for p in self.products)
        feature_names = sorted({f for p in self.products for f in p.features})
        self._feature_bit = {f: 1 << i for i, f in enumerate(feature_names)}
        self.feature_masks = np.array(
            [sum(self._feature_bit[f] for f in p.features) for p in self.products], np.int64
        )
        self.quality = np.array([p.quality for p in self.products])
        self.ratings = np.array([p.rating for p in self.products])
        self.prices = np.array([p.price for p in self.products])
        self._grades: dict[Query, Grades] = {}
        self.queries: tuple[Query, ...] = tuple(self._vocabulary())
        self._by_text = {q.text: q for q in self.queries}

    def __len__(self) -> int:
        return len(self.products)

    def product(self, product_id: str) -> Product:
        return self._by_id[product_id]

    def query(self, text: str) -> Query | None:
        """The vocabulary's intent for this text (case and spacing ignored), if it has one."""
        return self._by_text.get(" ".join(text.lower().split()))

    def grades(self, query: Query) -> Grades:
        """relevance(query, p) for every product p, by catalog index (cached, read-only)."""
        cached = self._grades.get(query)
        if cached is not None:
            return cached
        n = len(self.products)
        in_category = self.category_codes == self._category_code.get(query.category, -2)
        full = np.ones(n, dtype=bool)
        for value, codes, vocabulary in (
            (query.style, self.style_codes, self._style_code),
            (query.color, self.color_codes, self._color_code),
            (query.brand, self.brand_codes, self._brand_code),
        ):
            if value is not None:
                full &= codes == vocabulary.get(value, -2)
        if query.feature is not None:
            full &= (self.feature_masks & self._feature_bit.get(query.feature, 0)) != 0
        good = self.quality >= GOOD_QUALITY
        grades = np.where(in_category, np.where(full, 2 + good, 1), 0).astype(np.int8)
        grades.flags.writeable = False
        self._grades[query] = grades
        return grades

    def grades_of(self, query: Query, product_ids: Iterable[str]) -> Grades:
        """Relevance of these products (e.g. a result list, in rank order)."""
        indices = [self._by_id[pid].index for pid in product_ids]
        return self.grades(query)[np.array(indices, dtype=np.intp)]

    def _vocabulary(self) -> Iterable[Query]:
        brands: dict[str, set[str]] = {}
        for p in self.products:
            brands.setdefault(p.category, set()).add(p.brand)
        for c in CATEGORIES:
            candidates = [Query(c.noun, c.name, popularity=POPULARITY["category"])]
            candidates += [
                Query(f"{s} {c.noun}", c.name, style=s, popularity=POPULARITY["style"])
                for s in c.styles
            ]
            candidates += [
                Query(f"{f} {c.noun}", c.name, feature=f, popularity=POPULARITY["feature"])
                for f in c.features
            ]
            candidates += [
                Query(f"{k} {c.noun}", c.name, color=k, popularity=POPULARITY["color"])
                for k in QUERY_COLORS
            ]
            candidates += [
                Query(f"{b} {c.noun}", c.name, brand=b, popularity=POPULARITY["brand"])
                for b in sorted(brands.get(c.name, ()))
            ]
            candidates += [
                Query(f"{f} {s} {c.noun}", c.name, style=s, feature=f, popularity=COMBO_POPULARITY)
                for f in c.features
                for s in c.styles
            ]
            for q in candidates:
                if int((self.grades(q) >= 2).sum()) >= MIN_MATCHES:
                    yield q


def _title(rng: random.Random, parts: Sequence[tuple[float, str | None]]) -> str:
    words = [text for p, text in parts if text and rng.random() < p]
    return " ".join(w[:1].upper() + w[1:] for w in " ".join(words).split())


#: Prices are lognormal within a category: the median is the geometric middle of the category's
#: range and the range spans +-PRICE_RANGE_SIGMAS standard deviations (of log price); clipped to
#: the range. Quality adds QUALITY_PRICE standard deviations per unit above 0.5.
PRICE_RANGE_SIGMAS = 2.0
QUALITY_PRICE = 1.0
_STANDARD_NORMAL = NormalDist()


def _price(rng: random.Random, low: float, high: float, quality: float) -> float:
    # One uniform draw, as every product attribute takes, so the rest of the catalog does not
    # depend on how prices are drawn. Better products cost a little more; ".99" endings.
    z = _STANDARD_NORMAL.inv_cdf(min(max(rng.random(), 1e-12), 1 - 1e-12))
    sigma = math.log(high / low) / (2 * PRICE_RANGE_SIGMAS)
    log_price = math.log(math.sqrt(low * high)) + sigma * (z + QUALITY_PRICE * (quality - 0.5))
    return max(1.99, round(min(high, max(low, math.exp(log_price)))) - 0.01)


def generate_catalog(seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE) -> Catalog:
    """`size` products from `seed`; the same arguments give the same catalog, everywhere."""
    rng = random.Random(seed)
    brand_quality = {b: rng.uniform(0.3, 0.7) for b in BRANDS}
    sellers = {c.name: sorted(rng.sample(BRANDS, BRANDS_PER_CATEGORY)) for c in CATEGORIES}
    shares = [c.share for c in CATEGORIES]
    products: list[Product] = []
    for index in range(size):
        color = rng.choices(COLORS, COLOR_WEIGHTS)[0]
        if rng.random() < ACCESSORY_SHARE:
            category, brand, style = ACCESSORIES, rng.choice(BRANDS), None
            features: frozenset[str] = frozenset()
            quality = rng.betavariate(2, 2)
            accessory = rng.choice(ACCESSORY_TITLES)
            title = _title(
                rng, [(P_BRAND_IN_TITLE, brand), (P_COLOR_IN_TITLE, color), (1.0, accessory)]
            )
            price = _price(rng, *ACCESSORY_PRICE, quality)
        else:
            c = rng.choices(CATEGORIES, shares)[0]
            category, brand, style = c.name, rng.choice(sellers[c.name]), rng.choice(c.styles)
            b = brand_quality[brand]
            quality = rng.betavariate(1 + 4 * b, 1 + 4 * (1 - b))
            features = frozenset(f for f in c.features if rng.random() < P_FEATURE)
            noun = c.noun if rng.random() < P_CANONICAL_NOUN else rng.choice(c.nouns[1:])
            title = _title(
                rng,
                [(P_BRAND_IN_TITLE, brand)]
                + [(P_FEATURE_IN_TITLE, f) for f in sorted(features)]
                + [(P_COLOR_IN_TITLE, color), (P_STYLE_IN_TITLE, style), (1.0, noun)]
                + [(0.4, rng.choice(MODEL_WORDS))],
            )
            price = _price(rng, *c.price, quality)
        rating = round(min(5.0, max(1.0, 1 + 4 * quality + rng.gauss(0, RATING_NOISE))), 1)
        products.append(
            Product(
                index=index,
                id=product_id(index),
                title=title,
                category=category,
                brand=brand,
                color=color,
                style=style,
                features=features,
                price=price,
                rating=rating,
                quality=round(quality, 4),
            )
        )
    return Catalog(products, seed)


@functools.cache
def default_catalog() -> Catalog:
    """The bundled catalog (DEFAULT_SEED, DEFAULT_SIZE), built once per process."""
    return generate_catalog()
