"""The product catalog: 10 departments, 60 categories, supplier brands and private label.

Each category has a popularity (its share of an average member's purchases) and a
median shelf price. Products within a category split into private label (brand
``Private``, made for the retailer, about 25% cheaper) and national brands owned by
suppliers (``manufacturer_id``). Product popularity within a category follows a
Zipf law, so a few products sell most. The catalog comes from its own seeded stream
and is identical for every chunk of members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from offerdata.synthetic.params import STREAM_CATALOG, rng

#: (department, category, popularity weight, median shelf price in cents)
CATEGORIES: tuple[tuple[str, str, float, int], ...] = (
    ("GROCERY", "BREAKFAST CEREAL", 3.0, 429),
    ("GROCERY", "PASTA & SAUCE", 2.5, 249),
    ("GROCERY", "CANNED GOODS", 2.8, 159),
    ("GROCERY", "SALTY SNACKS", 4.0, 379),
    ("GROCERY", "COOKIES & CRACKERS", 3.0, 349),
    ("GROCERY", "CONDIMENTS", 2.0, 299),
    ("GROCERY", "BAKING", 1.5, 329),
    ("GROCERY", "RICE & GRAINS", 1.2, 279),
    ("GROCERY", "SOUP", 1.6, 219),
    ("GROCERY", "CANDY", 2.2, 199),
    ("DAIRY", "MILK", 4.5, 349),
    ("DAIRY", "CHEESE", 3.5, 449),
    ("DAIRY", "YOGURT", 3.0, 129),
    ("DAIRY", "EGGS", 2.5, 399),
    ("DAIRY", "BUTTER & SPREADS", 1.5, 479),
    ("DAIRY", "CREAMERS", 1.0, 389),
    ("PRODUCE", "FRUIT", 5.0, 299),
    ("PRODUCE", "VEGETABLES", 5.0, 199),
    ("PRODUCE", "PACKAGED SALAD", 2.0, 399),
    ("PRODUCE", "ORGANIC PRODUCE", 1.2, 449),
    ("MEAT & SEAFOOD", "BEEF", 2.5, 899),
    ("MEAT & SEAFOOD", "CHICKEN", 3.0, 749),
    ("MEAT & SEAFOOD", "PORK", 1.2, 699),
    ("MEAT & SEAFOOD", "SEAFOOD", 1.0, 1099),
    ("MEAT & SEAFOOD", "DELI MEATS", 2.0, 549),
    ("BAKERY", "BREAD", 4.0, 329),
    ("BAKERY", "BAGELS & MUFFINS", 1.2, 449),
    ("BAKERY", "CAKES & PIES", 0.8, 899),
    ("BAKERY", "TORTILLAS", 1.0, 299),
    ("FROZEN", "FROZEN MEALS", 2.5, 499),
    ("FROZEN", "FROZEN PIZZA", 1.8, 649),
    ("FROZEN", "ICE CREAM", 2.0, 549),
    ("FROZEN", "FROZEN VEGETABLES", 1.2, 249),
    ("BEVERAGES", "SOFT DRINKS", 4.0, 599),
    ("BEVERAGES", "COFFEE", 2.5, 899),
    ("BEVERAGES", "TEA", 0.8, 449),
    ("BEVERAGES", "BOTTLED WATER", 2.5, 499),
    ("BEVERAGES", "JUICE", 1.8, 399),
    ("BEVERAGES", "BEER", 2.0, 1299),
    ("BEVERAGES", "WINE", 1.5, 1199),
    ("BEVERAGES", "SPIRITS", 0.6, 2499),
    ("HEALTH & BEAUTY", "VITAMINS", 1.0, 1199),
    ("HEALTH & BEAUTY", "PAIN RELIEF", 0.8, 899),
    ("HEALTH & BEAUTY", "SKIN CARE", 0.9, 1099),
    ("HEALTH & BEAUTY", "HAIR CARE", 1.0, 699),
    ("HEALTH & BEAUTY", "ORAL CARE", 1.0, 449),
    ("HEALTH & BEAUTY", "COSMETICS", 0.6, 1299),
    ("HOUSEHOLD", "LAUNDRY", 1.5, 1199),
    ("HOUSEHOLD", "PAPER TOWELS & TISSUE", 2.0, 1099),
    ("HOUSEHOLD", "CLEANING SUPPLIES", 1.2, 499),
    ("HOUSEHOLD", "DISHWASHING", 1.0, 549),
    ("HOUSEHOLD", "FOOD STORAGE", 0.7, 449),
    ("PET", "DOG FOOD", 1.2, 1599),
    ("PET", "CAT FOOD", 1.2, 1299),
    ("PET", "PET TREATS", 0.8, 599),
    ("PET", "PET SUPPLIES", 0.4, 899),
    ("BABY", "DIAPERS", 0.8, 2499),
    ("BABY", "BABY FOOD", 0.6, 199),
    ("BABY", "BABY FORMULA", 0.4, 2899),
    ("BABY", "BABY CARE", 0.4, 699),
)

#: Roughly this many products in the whole catalog.
TARGET_PRODUCTS = 3_000
PRIVATE_BRAND = "Private"
#: The retailer itself, which sources every private-label product.
RETAILER_MANUFACTURER = "MFR0000"
PRIVATE_PRICE_FACTOR = 0.75

_NAME_HEADS = ("North", "Sun", "Green", "Blue", "Red", "Gold", "Silver", "Maple", "Oak", "River",
               "Stone", "Bright", "Happy", "Pure", "Fresh", "Prairie", "Harbor", "Summit", "Valley",
               "Meadow", "Crystal", "Lucky", "Royal", "Wild", "Golden", "Country", "Coastal",
               "Urban", "Little", "Grand")
_NAME_TAILS = ("field", "dale", "brook", "farms", "crest", "wood", "ridge", "bay", "vale", "mill",
               "ford", "haven", "grove", "spring", "stone", "light", " & Co", " Kitchen",
               " Naturals", " Select")


@dataclass(frozen=True)
class ProductCatalog:
    """The products and the lookup arrays line generation and offer targeting need.

    Product arrays are sorted by (category, private flag, popularity rank), so every
    (category, private flag) group is one contiguous slice ``group_start[g]:group_start[g+1]``
    with ``g = 2 * category + private``.
    """

    product_id: pa.Array
    department: np.ndarray  # department index per product
    category: np.ndarray  # category index per product
    private: np.ndarray  # bool per product
    brand: np.ndarray  # brand index per product (into brand_names)
    manufacturer: np.ndarray  # manufacturer index per product (0 = the retailer)
    price: np.ndarray  # shelf price per unit, cents
    group_start: np.ndarray  # offsets of the (category, private) groups
    group_cdf: np.ndarray  # group index + cumulative popularity within the group, last = 1
    brand_names: tuple[str, ...]
    department_names: tuple[str, ...]
    category_names: tuple[str, ...]
    category_department: np.ndarray  # department index per category
    category_popularity: np.ndarray  # normalised: an average member's category shares

    @property
    def n_products(self) -> int:
        """Number of products in the catalog."""
        return len(self.category)

    def sample(self, category: np.ndarray, private: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Pick one product per request from (category, private flag) by popularity.

        ``u`` are uniform draws in [0, 1); one binary search over the concatenated
        per-group cumulative weights serves every request at once.
        """
        group = 2 * category.astype(np.int64) + private.astype(np.int64)
        return np.searchsorted(self.group_cdf, group + u, side="right")

    def to_table(self) -> pa.Table:
        """The contract's ``products`` table."""
        dept = np.asarray(self.department_names, dtype=object)[self.department]
        cat = np.asarray(self.category_names, dtype=object)[self.category]
        brand = np.asarray(self.brand_names, dtype=object)[self.brand]
        manufacturer = [f"MFR{m:04d}" for m in self.manufacturer]
        return pa.table({
            "product_id": self.product_id,
            "department": pa.array(dept, pa.string()),
            "category": pa.array(cat, pa.string()),
            "brand": pa.array(brand, pa.string()),
            "manufacturer_id": pa.array(manufacturer, pa.string()),
        })


def _brand_names(gen: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct made-up supplier brand names (``Brightfield``, ``Oak Naturals``)."""
    names = [h + t for h in _NAME_HEADS for t in _NAME_TAILS]
    picked = gen.choice(len(names), size=n, replace=False)
    return [names[i] for i in picked]


def build_products(seed: int) -> ProductCatalog:
    """Generate the catalog for ``seed`` from the catalog stream (same for every chunk)."""
    gen = rng(seed, 0, STREAM_CATALOG)
    departments = tuple(dict.fromkeys(d for d, _, _, _ in CATEGORIES))
    cat_dept = np.array([departments.index(d) for d, _, _, _ in CATEGORIES])
    popularity = np.array([p for _, _, p, _ in CATEGORIES])
    median_price = np.array([c for _, _, _, c in CATEGORIES], dtype=np.float64)

    # Each department has 5-9 suppliers; each supplier owns 1-3 brands sold in that department.
    brand_names = [PRIVATE_BRAND]
    brand_manufacturer = [0]
    dept_brands: list[list[int]] = []
    n_suppliers = gen.integers(5, 10, size=len(departments))
    brands_per_supplier = [gen.integers(1, 4, size=k) for k in n_suppliers]
    fresh = iter(_brand_names(gen, int(sum(b.sum() for b in brands_per_supplier))))
    manufacturer = 0
    for per_supplier in brands_per_supplier:
        owned: list[int] = []
        for n_brands in per_supplier:
            manufacturer += 1
            for _ in range(int(n_brands)):
                owned.append(len(brand_names))
                brand_names.append(next(fresh))
                brand_manufacturer.append(manufacturer)
        dept_brands.append(owned)

    share = np.sqrt(popularity) / np.sqrt(popularity).sum()
    parts: list[tuple[np.ndarray, ...]] = []  # per (category, private) group, in group order
    for c in range(len(CATEGORIES)):
        n = max(20, round(TARGET_PRODUCTS * share[c]))
        n_private = max(2, round(0.2 * n))
        pool = dept_brands[cat_dept[c]]
        brands = gen.choice(pool, size=min(len(pool), int(gen.integers(3, 7))), replace=False)
        brand_weight = 1.0 / np.arange(1, len(brands) + 1)
        for is_private, count in ((0, n - n_private), (1, n_private)):
            weight = 1.0 / np.arange(1, count + 1) ** 0.9  # Zipf: the first products sell most
            price = median_price[c] * gen.lognormal(0.0, 0.3, size=count)
            if is_private:
                price *= PRIVATE_PRICE_FACTOR
                owner = np.zeros(count, dtype=np.int64)
            else:
                owner = gen.choice(brands, size=count, p=brand_weight / brand_weight.sum())
            parts.append((np.full(count, c), np.full(count, bool(is_private)), owner, price, weight))

    category, private, brand, raw_price, weight = (np.concatenate(a) for a in zip(*parts, strict=True))
    # Shelf prices end in 9 cents, as most grocery prices do.
    price = np.maximum(49, (raw_price // 10) * 10 + 9).astype(np.int64)
    group = 2 * category + private
    group_start = np.searchsorted(group, np.arange(2 * len(CATEGORIES) + 1))
    cumulative = np.empty(len(weight))
    for g in range(2 * len(CATEGORIES)):
        lo, hi = group_start[g], group_start[g + 1]
        cw = np.cumsum(weight[lo:hi])
        cumulative[lo:hi] = g + cw / cw[-1]
        cumulative[hi - 1] = g + 1.0  # exactly 1: a draw below 1 never spills into the next group
    # Product ids are shuffled so they carry no hint of category or popularity.
    numbers = gen.permutation(len(category)) + 10_001
    product_id = pa.array([f"P{n:06d}" for n in numbers], pa.string())
    return ProductCatalog(
        product_id=product_id,
        department=cat_dept[category],
        category=category,
        private=private,
        brand=brand,
        manufacturer=np.asarray(brand_manufacturer)[brand],
        price=price,
        group_start=group_start,
        group_cdf=cumulative,
        brand_names=tuple(brand_names),
        department_names=departments,
        category_names=tuple(c for _, c, _, _ in CATEGORIES),
        category_department=cat_dept,
        category_popularity=popularity / popularity.sum(),
    )
