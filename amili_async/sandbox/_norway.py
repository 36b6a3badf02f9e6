"""Norwegian-looking fake data: names, places, check digits (no real persons, no network)."""

from __future__ import annotations

__all__ = [
    "CITIES",
    "COMPANY_SUFFIXES",
    "DESCRIPTIONS",
    "FEMALE_NAMES",
    "LAST_NAMES",
    "MALE_NAMES",
    "STREETS",
    "fake_national_id",
    "kid_mod10",
    "luhn_digit",
    "org_number",
]

FEMALE_NAMES = (
    "Nora", "Emma", "Olivia", "Ella", "Sofie", "Ingrid", "Astrid", "Sara", "Maja", "Leah",
    "Frida", "Kari", "Anne", "Ingeborg", "Marit", "Hanne", "Silje", "Ida", "Tuva", "Eva",
    "Liv", "Solveig", "Hilde", "Kristin", "Ragnhild", "Tone", "Marte", "Thea", "Vilde", "Sigrid",
)  # fmt: skip
MALE_NAMES = (
    "Jakob", "Emil", "Noah", "Oliver", "Filip", "William", "Lucas", "Henrik", "Aksel", "Olav",
    "Ola", "Per", "Jan", "Bjørn", "Lars", "Knut", "Arne", "Terje", "Geir", "Magnus",
    "Sindre", "Eirik", "Håkon", "Sverre", "Torbjørn", "Trond", "Øyvind", "Vegard", "Kjetil",
    "Espen",
)  # fmt: skip
LAST_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen",
    "Lund", "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg",
    "Svendsen", "Eide", "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen",
    "Mathisen", "Lie", "Amundsen", "Nguyen", "Rasmussen", "Ali", "Lunde", "Solheim",
    "Berntsen", "Moe", "Kvam", "Næss", "Aas", "Fjeld", "Bråthen", "Sæther", "Løken",
)  # fmt: skip
STREETS = (
    "Storgata", "Kirkegata", "Skolegata", "Parkveien", "Strandveien", "Bjørkeveien",
    "Granveien", "Furuveien", "Solveien", "Bakkeveien", "Fjordveien", "Havnegata",
    "Torggata", "Markveien", "Thorvald Meyers gate", "Bogstadveien", "Dronningens gate",
    "Kongens gate", "Olav Tryggvasons gate", "Nygårdsgaten", "Sandviksveien", "Løkkeveien",
    "Elvegata", "Jernbanegata", "Industriveien", "Lyngveien", "Rosenborggata", "Møllergata",
)  # fmt: skip
# (city, zip codes) pairs; zip codes are real four-digit Norwegian postcodes for the city.
CITIES = (
    ("Oslo", ("0150", "0165", "0253", "0354", "0457", "0552", "0661", "0770", "0875")),
    ("Bergen", ("5003", "5008", "5015", "5033", "5089", "5144")),
    ("Trondheim", ("7010", "7013", "7030", "7042", "7052")),
    ("Stavanger", ("4005", "4010", "4014", "4021", "4032")),
    ("Drammen", ("3015", "3019", "3024", "3036")),
    ("Kristiansand", ("4608", "4612", "4631", "4639")),
    ("Tromsø", ("9008", "9010", "9016", "9020")),
    ("Fredrikstad", ("1606", "1614", "1626")),
    ("Sandnes", ("4306", "4313", "4318")),
    ("Bodø", ("8003", "8006", "8010")),
    ("Ålesund", ("6002", "6005", "6009")),
    ("Tønsberg", ("3110", "3116", "3122")),
    ("Hamar", ("2317", "2322", "2326")),
    ("Lillehammer", ("2609", "2614", "2619")),
)  # fmt: skip
COMPANY_SUFFIXES = (
    "Bygg AS", "Eiendom AS", "Transport AS", "Rør AS", "Elektro AS", "Regnskap AS",
    "Maskin AS", "Handel AS", "Consulting AS", "Holding AS", "Frisør", "Bakeri AS",
)  # fmt: skip
DESCRIPTIONS = (
    "Husleie", "Felleskostnader", "Strøm", "Parkering", "Vedlikehold", "Bredbånd",
    "Treningsavgift", "Tannbehandling", "Kontingent", "Vaktmestertjenester",
    "Renovasjon", "Leie av bod",
)  # fmt: skip
MONTHS = (
    "januar", "februar", "mars", "april", "mai", "juni",
    "juli", "august", "september", "oktober", "november", "desember",
)  # fmt: skip

# MOD11 weights of the Brønnøysund organisation number and of the national identity
# number's two check digits, as the registers define them.
_ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
_FNR_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
# Luhn doubling of one digit (2 * d, digits summed), as a translation table for speed.
_DOUBLE = str.maketrans("0123456789", "0246813579")


def luhn_digit(digits: str) -> str:
    """The MOD10 (Luhn) check digit for ``digits`` (used by Norwegian KID numbers)."""
    rev = digits[::-1]
    total = sum(map(int, rev[1::2])) + sum(map(int, rev[0::2].translate(_DOUBLE)))
    return str((10 - total % 10) % 10)


def kid_mod10(body: str) -> str:
    """A KID/OCR reference: ``body`` plus its MOD10 check digit."""
    return body + luhn_digit(body)


def kid_is_valid(kid: str) -> bool:
    """Whether ``kid`` is a KID/OCR reference with a correct MOD10 check digit."""
    return len(kid) >= 2 and kid.isdigit() and luhn_digit(kid[:-1]) == kid[-1]


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    rest = sum(int(c) * w for c, w in zip(digits, weights, strict=True)) % 11
    check = 0 if rest == 0 else 11 - rest
    return None if check == 10 else check


def org_number(n: int) -> str:
    """A 9-digit organisation number with a valid MOD11 check digit, derived from ``n``."""
    base = 900_000_00 + n % 10_000_000
    while True:
        digits = f"{base:08d}"
        check = _mod11(digits, _ORG_WEIGHTS)
        if check is not None:
            return digits + str(check)
        base += 1


def fake_national_id(day: int, month: int, year: int, individual: int) -> str | None:
    """An 11-digit *synthetic* national identity number (month + 80, as in the Norwegian
    test-data convention, so it can never be a real person's), with valid MOD11 check
    digits; None when the individual number yields no valid check digit."""
    m = month + 80
    y = year % 100
    d = (day // 10, day % 10, m // 10, m % 10, y // 10, y % 10,
         individual // 100, individual // 10 % 10, individual % 10)  # fmt: skip
    r1 = (3 * d[0] + 7 * d[1] + 6 * d[2] + d[3] + 8 * d[4] + 9 * d[5]
          + 4 * d[6] + 5 * d[7] + 2 * d[8]) % 11  # fmt: skip
    k1 = 0 if r1 == 0 else 11 - r1
    if k1 == 10:
        return None
    r2 = (5 * d[0] + 4 * d[1] + 3 * d[2] + 2 * d[3] + 7 * d[4] + 6 * d[5]
          + 5 * d[6] + 4 * d[7] + 3 * d[8] + 2 * k1) % 11  # fmt: skip
    k2 = 0 if r2 == 0 else 11 - r2
    if k2 == 10:
        return None
    return f"{day:02d}{m:02d}{y:02d}{individual:03d}{k1}{k2}"


def national_id_is_valid(fnr: str) -> bool:
    """MOD11 check of an 11-digit national identity number."""
    if len(fnr) != 11 or not fnr.isdigit():
        return False
    k1 = _mod11(fnr[:9], _FNR_W1)
    k2 = _mod11(fnr[:10], _FNR_W2)
    return k1 is not None and k2 is not None and fnr[9:] == f"{k1}{k2}"


def org_number_is_valid(number: str) -> bool:
    """MOD11 check of a 9-digit organisation number."""
    if len(number) != 9 or not number.isdigit():
        return False
    return _mod11(number[:8], _ORG_WEIGHTS) == int(number[8])
