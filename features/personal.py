"""Personal data recognised by header and by content: e-mail addresses, phone numbers, personal
names and street addresses (German and English). Such a column is never a feature and its values
never reach a reason or a log; an e-mail column is used for its domain only.

``classify(name, values)`` says which kind a column holds and how it was found. Content is judged
on a sample: a column is personal when at least the named share of its non-empty values looks
like the kind (``EMAIL_SHARE`` …). Plain numbers, amounts, ids and dates are never phone numbers.
"""

from __future__ import annotations

import re

import pandas as pd

PERSONAL_KINDS = {
    "email": {"en": "e-mail addresses", "de": "E-Mail-Adressen"},
    "phone": {"en": "phone numbers", "de": "Telefonnummern"},
    "name": {"en": "personal names", "de": "Personennamen"},
    "address": {"en": "street addresses", "de": "Straßenadressen"},
}
EMAIL_SHARE = 0.5
PHONE_SHARE = 0.5
NAME_SHARE = 0.3
NAME_MIN_DISTINCT = 3
ADDRESS_SHARE = 0.5
SAMPLE = 500

# Headers, normalised (lower case, non-alphanumerics as "_"): the whole header names the field.
_HEADERS = {
    "email": r"((work|home|private|privat|business|personal|primary|secondary|gesch(ä|ae)ftliche)_)?"
             r"(e_?mail|mail)(_?address(e)?|_?adresse)?(_?\d)?(_(work|home|other|privat|private|gesch(ä|ae)ftlich))?",
    "phone": r"((mobile|work|home|business|office|direct|private|privat|cell)_)?"
             r"(phone|telephone|telefon|tel|fon|cell|handy|mobil|mobile|mobiltelefon|rufnummer|fax|telefax)"
             r"(_?(number|nummer|nr|no))?(_?\d)?(_(gesch(ä|ae)ftlich|privat|mobil|work|home|mobile|office))?"
             r"|mobilephone|phonenumber|cellphone",
    "name": r"(first|last|full|given|family|middle|sur|contact|person|maiden|display)_?name|name|vorname|nachname"
            r"|familienname|ansprechpartner(_?name)?|kontaktperson|salutation|anrede|firstname|lastname|fullname"
            r"|surname",
    "address": r"((street|postal|mailing|home|billing|shipping)(_?address)?|address)(_?line)?(_?\d)?"
               r"|address\d_(line\d|street\d?|composite)"
               r"|stra(ss|ß)e(_?und_?hausnummer|_?nr)?|str|anschrift|hausnummer|hausnr"
               r"|(gesch(ä|ae)fts|wohn|privat|post|liefer|rechnungs|firmen)?adresse",
}
_HEADER_RES = {kind: re.compile(rf"(?:{pattern})") for kind, pattern in _HEADERS.items()}

_EMAIL = re.compile(r"^([^<>@]*<)?[^@\s<>]+@[^@\s<>]+\.[a-z]{2,}>?$", re.I)  # also "Anna <a@b.de>"
_DATE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}([ T]\d{1,2}:\d{2}.*)?$")
_PHONE_CHARS = re.compile(r"^\+?[\d\s()./-]+$")
_SEPARATED = re.compile(r"\d[\s()./-]+\d")
# 1.234.567,89 / 1,234.56 / 1 234 567 / 12,5: amounts, grouped by one separator, decimals by the other.
_AMOUNT = re.compile(r"[1-9]\d{0,2}((\.\d{3})+(,\d+)?|(,\d{3})+(\.\d+)?|( \d{3})+([.,]\d+)?)|(0|[1-9]\d*)[.,]\d+")
_LEGAL_FORMS = frozenset("gmbh ag kg ohg se ug ltd llc inc co corp plc gbr ev e.v sa sarl bv nv ab oy as".split())
# A house number: 1-3 digits, a letter, a range ("12a", "123-125"); "Spring 2024" is no address.
_HOUSE = r"(?<!\d)\d{1,3}(?!\d)\s*[a-z]?(\s*[-/]\s*\d{1,3}[a-z]?)?\b"
_STREET_DE = re.compile(
    r"[^\W\d_]{2,}[-\s]?(stra(ss|ß)e|str\.?|weg|allee|platz|gasse|ring|damm|ufer|chaussee|pfad|steig|markt"
    r"|hof|wall|graben|kamp)\s*" + _HOUSE
    + r"|^(am|an der|an den|auf dem|auf der|im|in der|in den|unter den|hinter der|hinter dem|vor dem|zum|zur"
    r"|beim|alte|alter|altes)\s+[^\W\d_][\w.-]*(\s+[^\W\d_][\w.-]*){0,3}\s+" + _HOUSE, re.I)
_STREET_EN = re.compile(
    r"^\d{1,5}[a-z]{0,2}\s+([^\W\d_][\w.-]*\s+){0,4}(street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard"
    r"|blvd|way|court|ct|place|pl|square|sq|terrace|close|crescent|parkway|pkwy|highway|hwy)\b"
    r"|\b(apt|apartment|suite|ste|unit)\.?\s*#?\s*\d+[a-z]?\b|\bp\.?\s?o\.?\s+box\s+\d+", re.I)
_FIRST_NAMES = frozenset("""
anna maria julia laura lena lea sarah sara lisa katharina christina sophie sophia marie emma mia hannah
hanna lara johanna sabine petra claudia andrea susanne birgit monika ursula renate karin heike nicole
stefanie stephanie melanie sandra martina tanja anja nadine jana jessica jennifer eva elena ines jasmin
franziska charlotte clara klara luisa paula emily olivia ava isabella mary patricia linda barbara
elizabeth susan margaret dorothy karen nancy betty helen ruth sharon michelle kimberly amy angela
rebecca emma grace chloe lucy ellie amelia kate katie rachel megan
thomas michael andreas stefan stephan christian peter wolfgang klaus jürgen juergen frank markus
marcus martin matthias alexander tobias sebastian daniel florian jan tim jonas lukas lucas leon paul
felix maximilian max moritz niklas david philipp simon fabian benjamin dominik patrick uwe dieter
hans werner manfred gerhard helmut heinz horst rainer ralf bernd karl friedrich georg johannes
jens sven dirk holger oliver kai torsten thorsten carsten jörg joerg olaf
john james robert william richard joseph charles christopher matthew anthony mark donald steven
paul andrew joshua kevin brian george edward ronald timothy jason jeffrey ryan jacob gary nicholas
eric stephen jonathan larry justin scott brandon frank gregory samuel raymond patrick jack harry
oliver charlie henry adam luke ben sam tom mike chris dave steve
""".split())
_LAST_NAMES = frozenset("""
müller mueller schmidt schneider fischer weber meyer meier mayer maier wagner becker schulz schulze
hoffmann hofmann schäfer schaefer koch bauer richter klein wolf schröder schroeder neumann schwarz
zimmermann braun krüger krueger hartmann lange schmitt werner schmitz krause lehmann köhler koehler
herrmann könig koenig walter peters kaiser fuchs lang weiß weiss jung hahn keller vogel friedrich
günther guenther frank berger winkler roth beck lorenz baumann franke albrecht ludwig böhm boehm
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
wilson anderson thomas taylor moore jackson martin lee thompson white harris clark lewis robinson
walker young allen king wright scott green baker adams nelson hill campbell mitchell roberts carter
phillips evans turner parker collins edwards stewart morris murphy cook rogers morgan cooper
""".split())
# Words of company names that carry a surname ("Weber Consulting", "Baker Industries").
_ORGANISATION_WORDS = frozenset("""
consulting consultants solutions group gruppe holding holdings partners partner systems systeme software services
service technologies technology technik tech industries industrie international digital media labs lab bank
versicherung werke werk bau handel logistik immobilien brothers sons söhne company enterprises ventures studio
agentur agency capital finance energy energie motors automotive pharma foods verlag druck team shop store
""".split())
# Surnames that are also everyday words (sizes, colours, trades): no name on their own.
_WORD_SURNAMES = frozenset("""
klein lang lange jung schwarz braun weiß weiss wolf vogel fuchs koch bauer kaiser könig koenig keller richter hahn
white brown green black king young cook baker walker hill turner
""".split())
_NAME_TOKEN = re.compile(r"^[^\W\d_]+(?:[-'][^\W\d_]+)*\.?$")


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-zäöüß]+", "_", str(name).casefold()).strip("_")


def kind_by_header(name: str) -> str | None:
    """The kind of personal data a header names, or None ("email_opens" and "company_name" are not)."""
    header = _norm(name)
    for kind, pattern in _HEADER_RES.items():
        if pattern.fullmatch(header):
            return kind
    return None


# Placeholders for "nothing here": not a value to judge.
_BLANKS = frozenset({"-", "--", "n/a", "na", "none", "null", "nan", "k.a.", "k. a.", "unknown", "unbekannt"})


def _sample(values: pd.Series, sample: int) -> list[str]:
    """The first ``sample`` non-empty values, stripped: deterministic, and cheap on 100k rows."""
    texts = []
    for value in values.dropna():
        text = str(value).strip()
        if text and text.casefold() not in _BLANKS:
            texts.append(text)
            if len(texts) == sample:
                break
    return texts


def _is_phone(text: str) -> bool:
    if not _PHONE_CHARS.match(text) or _DATE.match(text):
        return False
    digits = sum(c.isdigit() for c in text)
    if not 6 <= digits <= 15:
        return False
    compact = re.sub(r"[\s()./-]", "", text)
    if compact.startswith("000"):  # no country code starts with 0: a zero-padded id ("0000123456")
        return False
    if text.startswith("+") or compact.startswith("00"):
        return True
    if re.fullmatch(r"\d+", text):  # a bare number is an id or an amount, unless it dials like one
        return text.startswith("0") and digits >= 7
    if _AMOUNT.fullmatch(text):
        return False
    return bool(_SEPARATED.search(text)) and (text.startswith(("0", "(")) or digits >= 7)


def _is_name(text: str) -> bool:
    tokens = text.replace(",", " ").split()
    if not 1 <= len(tokens) <= 4 or not all(_NAME_TOKEN.match(t) for t in tokens):
        return False
    lowered = [t.casefold().rstrip(".") for t in tokens]
    if any(t in _LEGAL_FORMS or t in _ORGANISATION_WORDS for t in lowered):
        return False
    parts = {p for t in lowered for p in t.split("-")}
    if parts & _FIRST_NAMES:
        return True
    # "Klein", "Braun", "Green Energy": a surname that is also a word counts only beside a first name.
    return bool(parts & _LAST_NAMES - _WORD_SURNAMES)


def _is_address(text: str) -> bool:
    return bool(_STREET_DE.search(text) or _STREET_EN.search(text))


_TESTS = (("email", _EMAIL.match, EMAIL_SHARE), ("phone", _is_phone, PHONE_SHARE),
          ("address", _is_address, ADDRESS_SHARE), ("name", _is_name, NAME_SHARE))


def kind_by_content(values, sample: int = SAMPLE) -> str | None:
    """The kind of personal data most of a column's values look like, or None."""
    series = pd.Series(values)
    if series.dtype.kind in "biufcmM":
        return None  # numbers, booleans, dates: a phone column of numbers is one by its header only
    texts = _sample(series, sample)
    if not texts:
        return None
    best, best_share = None, 0.0
    for kind, test, threshold in _TESTS:
        hits = [t for t in texts if test(t)]
        if kind == "name" and len({t.casefold() for t in hits}) < NAME_MIN_DISTINCT:
            continue  # one "Peter" among industries is no name column
        share = len(hits) / len(texts)
        if share >= threshold and share > best_share:
            best, best_share = kind, share
    return best


def reason(kind: str, how: str) -> str:
    """Why a column is left out: ``personal data: phone numbers (by content)``."""
    return f"personal data: {PERSONAL_KINDS[kind]['en']} (by {how})"


def classify(name: str, values) -> tuple[str, str] | None:
    """``(kind, "header" | "content")`` when the column holds personal data, else None."""
    if (kind := kind_by_header(name)) is not None:
        return kind, "header"
    if (kind := kind_by_content(values)) is not None:
        return kind, "content"
    return None


def personal_columns(frame: pd.DataFrame, skip=()) -> dict[str, tuple[str, str]]:
    """Every column of ``frame`` (but ``skip``) that holds personal data: ``{column: (kind, how)}``."""
    found = {}
    for column in frame.columns:
        if column in skip:
            continue
        if (hit := classify(str(column), frame[column])) is not None:
            found[column] = hit
    return found
