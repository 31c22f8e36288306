"""Demo data for a fresh local market: named dev accounts, arbitrator profiles, listings.

``seed_demo_data`` runs once: it does nothing when the database already has users. The demo
listings are written the way people in Kazakhstan write them on a second-hand market: most in
Russian, many in Kazakh, some in English; cities in Cyrillic; prices in tenge, dollars or
ether. Each listing gets one or two photos drawn at seed time (``webapp/seed_assets``), stored
in the upload folder exactly as an uploaded photo is (re-encoded by the same code, random
32-hex name, the name kept in ``Listing.photos``). From a shell, ``python -m webapp.seed``
connects to ``ESCROW_RPC_URL``, loads the recorded deployment and seeds the database at
``DATABASE_URL``.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from escrow.chain import Chain
from escrow.db.models import ArbitratorProfile, Currency, Listing, ListingStatus, User, utcnow
from escrow.deploy import Deployment

ETH = 10**18
USD = 10**6  # the dollar stablecoin has 6 decimals
KZT = 10**2  # the tenge stablecoin has 2 decimals (tiyn)
#: The largest photo the upload checks accept (``MAX_PHOTO_PIXELS``); the drawn ones are 800×600.
MAX_PHOTO_PIXELS = 40_000_000
#: The database file a data folder holds (``escrow.db.engine.database_url``, ``LocalStack``).
SQLITE_NAME = "escrow.sqlite3"


def eth(amount: str) -> int:
    return int(Decimal(amount) * ETH)


def usd(amount: int) -> int:
    return amount * USD


def kzt(amount: int) -> int:
    return amount * KZT


# (display name, languages, home city); accounts 1 to 4 of the dev chain.
SELLERS = [
    ("Айгерім | Электроника", ["Kazakh", "Russian", "English"], "Алматы"),
    ("Нұрлан Жиһаз", ["Kazakh", "Russian"], "Астана"),
    ("Дана: балалар заттары мен кітаптар", ["Kazakh", "Russian"], "Шымкент"),
    ("Ерлан Вело", ["Russian", "English"], "Қарағанды"),
]
# Accounts 5 to 7.
BUYERS = [
    ("Әсел Б.", ["Kazakh", "Russian"]),
    ("Тимур К.", ["Russian"]),
    ("Madina S.", ["Kazakh", "English"]),
]
ARBITRATORS = [
    (
        "Арбитр Алматы (Сәуле Н.)",
        ["Kazakh", "Russian", "English"],
        "Бывший юрист по защите прав потребителей. Споры о телефонах и технике решаю за 48 "
        "часов. Тұтынушылар құқығын қорғау бойынша заңгер болып жұмыс істедім.",
    ),
    (
        "Fair Deal Астана (Руслан Т.)",
        ["Russian", "English"],
        "Медиатор в спорах между покупателями и продавцами с 2019 года. Прошу фото и видео "
        "распаковки. Marketplace mediator since 2019; photo and video evidence preferred.",
    ),
]


@dataclass(frozen=True)
class DemoListing:
    seller: int  # index into SELLERS
    lang: str  # "ru", "kk" or "en": the language the seller wrote in
    title: str
    description: str
    category: str  # a key of webapp.listings.CATEGORIES
    price: int  # in the currency's smallest unit
    currency: str
    city: str
    delivery_days: int
    art: str  # a drawing of webapp.seed_assets.photos.ARTS
    photos: int = 1  # how many photos (1 or 2)
    color: tuple[int, int, int] | None = None  # the colour the title names, if any

    @property
    def caption(self) -> str:
        """The short title on the photo."""
        return self.title


_ETH, _USD, _KZT = Currency.ETH.value, Currency.USD.value, Currency.KZT.value
_L = DemoListing

# In the order they were "listed", oldest first.
LISTINGS: list[DemoListing] = [
    # -- Aigerim: phones and electronics
    _L(
        0,
        "ru",
        "iPhone 13, 128 ГБ, синий",
        "Продаю свой айфон: батарея 87%, всегда был в чехле и под стеклом. Не ремонтировался, "
        "Face ID работает. Коробка и кабель есть. Могу встретиться в ТРЦ Mega.",
        "phones",
        kzt(235_000),
        _KZT,
        "Алматы",
        3,
        "phone",
        2,
        color=(47, 111, 186),
    ),
    _L(
        0,
        "kk",
        "Айфон 11, 64 ГБ, қара",
        "Айфон жақсы күйде, батареясы 81%. Экранында сызат жоқ, қорабы бар. Алматы ішінде "
        "өзім жеткізіп беремін.",
        "phones",
        kzt(120_000),
        _KZT,
        "Алматы",
        2,
        "phone",
        2,
        color=(40, 40, 48),
    ),
    _L(
        0,
        "ru",
        "Samsung Galaxy A54, 8/256 ГБ",
        "Покупала в Technodom в прошлом году, гарантия ещё 4 месяца. Две сим-карты, работает "
        "с Kcell, Beeline и Tele2. Отправлю по Казахстану.",
        "phones",
        usd(250),
        _USD,
        "Астана",
        5,
        "phone",
    ),
    _L(
        0,
        "kk",
        "Xiaomi Redmi Note 12, 6/128 ГБ",
        "Телефон ұқыпты пайдаланылды, қабы мен зарядтағышы бірге беріледі. Екі SIM-картаға "
        "арналған.",
        "phones",
        kzt(75_000),
        _KZT,
        "Шымкент",
        4,
        "phone",
    ),
    _L(
        0,
        "en",
        "MacBook Air M1 2020, 8/256 GB",
        "120 battery cycles, Russian–English keyboard, charger included. Selling because I got "
        "a laptop at work.",
        "electronics",
        eth("0.2"),
        _ETH,
        "Алматы",
        5,
        "laptop",
        2,
    ),
    _L(
        0,
        "ru",
        "Наушники Sony WH-1000XM4",
        "Шумоподавление работает отлично, в комплекте чехол и кабель. Амбушюры без потёртостей.",
        "electronics",
        usd(95),
        _USD,
        "Алматы",
        4,
        "headphones",
    ),
    _L(
        0,
        "kk",
        "PlayStation 5, екі джойстигімен",
        "Дискі салатын нұсқасы, 2023 жылы сатып алынған. Үш ойын сыйлыққа беріледі.",
        "electronics",
        eth("0.12"),
        _ETH,
        "Астана",
        5,
        "gamepad",
        2,
    ),
    _L(
        0,
        "ru",
        'Телевизор LG 43", Smart TV',
        "4K, пульт есть, на стене не висел. Самовывоз в Атырау или отправлю по Казахстану.",
        "electronics",
        kzt(110_000),
        _KZT,
        "Атырау",
        7,
        "tv",
    ),
    _L(
        0,
        "en",
        "Samsung Galaxy S22, 128 GB",
        "A small scratch on the frame, the screen is perfect. Comes with two cases.",
        "phones",
        usd(260),
        _USD,
        "Өскемен",
        6,
        "phone",
    ),
    # -- Nurlan: furniture and the home
    _L(
        1,
        "ru",
        "Угловой диван, серый",
        "Длина 2,6 м, раскладывается в спальное место. Самовывоз из Астаны, район Есиль, "
        "поможем вынести.",
        "furniture",
        kzt(150_000),
        _KZT,
        "Астана",
        3,
        "sofa",
        2,
        color=(130, 134, 142),
    ),
    _L(
        1,
        "kk",
        "Емен ас үстелі және 4 орындық",
        "Табиғи емен, өлшемі 160×90 см. Үстелдің беті жақында қайта лакталды. Астанадан "
        "өзіңіз алып кетесіз.",
        "furniture",
        eth("0.06"),
        _ETH,
        "Астана",
        5,
        "table",
    ),
    _L(
        1,
        "ru",
        "Шкаф-купе с зеркалом",
        "Две двери, высота 220 см. Разберём и поможем погрузить, сборка по договорённости.",
        "furniture",
        kzt(65_000),
        _KZT,
        "Павлодар",
        7,
        "wardrobe",
    ),
    _L(
        1,
        "en",
        "Ergonomic office chair",
        "Adjustable armrests and lumbar support, mesh back. Used for a year at home.",
        "furniture",
        usd(70),
        _USD,
        "Астана",
        4,
        "chair",
    ),
    _L(
        1,
        "kk",
        "Жүн кілем, 2×3 м",
        "Қазақы ою-өрнегі бар табиғи жүн кілем. Химиялық тазалаудан жаңа ғана өтті.",
        "home",
        kzt(45_000),
        _KZT,
        "Түркістан",
        6,
        "carpet",
        2,
    ),
    _L(
        1,
        "ru",
        "Самовар электрический, 5 л",
        "Рабочий, латунь на ручках немного потемнела. Отлично для дачи и больших чаепитий.",
        "home",
        kzt(18_000),
        _KZT,
        "Семей",
        6,
        "samovar",
    ),
    _L(
        1,
        "kk",
        "Киіз үй, 6 қанат",
        "Толық жиынтық: шаңырақ, уықтар, кереге, киіздер мен есік. Тойға, демалыс орнына "
        "немесе туристік базаға лайық. Жеткізуге және тігуге көмектесеміз.",
        "other",
        kzt(2_800_000),
        _KZT,
        "Ақтөбе",
        14,
        "yurt",
        2,
    ),
    _L(
        1,
        "ru",
        "Стиральная машина LG, 6 кг",
        "Фронтальная загрузка, работает тихо. Продаём из-за переезда, только самовывоз.",
        "home",
        kzt(85_000),
        _KZT,
        "Қостанай",
        5,
        "washer",
    ),
    _L(
        1,
        "en",
        "Samsung two-door fridge, 180 cm",
        "No Frost, works perfectly, a small dent on the side. Pick-up only.",
        "home",
        usd(180),
        _USD,
        "Орал",
        4,
        "fridge",
    ),
    _L(
        1,
        "kk",
        "Электр шәйнек, 1,7 л",
        "Бір ай ғана қолданылды, жаңа сияқты. Қорабы мен кепілдік талоны бар.",
        "home",
        kzt(6_500),
        _KZT,
        "Тараз",
        5,
        "kettle",
    ),
    _L(
        1,
        "ru",
        "Микроволновка Samsung, 23 л",
        "Греет исправно, внутри чистая, тарелка целая. Отдам вместе с крышкой для разогрева.",
        "home",
        kzt(20_000),
        _KZT,
        "Атырау",
        5,
        "microwave",
    ),
    # -- Dana: kids' things and books
    _L(
        2,
        "ru",
        'Детский велосипед 16"',
        "Для ребёнка 4–6 лет, с боковыми колёсами. Пара царапин на раме, в остальном как новый.",
        "kids",
        kzt(25_000),
        _KZT,
        "Шымкент",
        4,
        "kids_bicycle",
    ),
    _L(
        2,
        "kk",
        "Балалар арбасы, 2-уі 1-де",
        "Бесігі мен отырғышы бар, жаңбырдан қорғайтын қабы бірге беріледі. Бір ғана бала мінген.",
        "kids",
        eth("0.04"),
        _ETH,
        "Шымкент",
        5,
        "stroller",
        2,
    ),
    _L(
        2,
        "ru",
        "Lego Classic, 1500 деталей",
        "Полный набор, детали разложены по коробкам. Инструкция есть.",
        "kids",
        usd(35),
        _USD,
        "Тараз",
        5,
        "blocks",
    ),
    _L(
        2,
        "kk",
        "Абай — Қара сөздер",
        "Қатты мұқабалы, қазақ және орыс тілдерінде. Жаңа сияқты, беттерінде белгі жоқ.",
        "books",
        kzt(3_500),
        _KZT,
        "Семей",
        5,
        "book",
    ),
    _L(
        2,
        "ru",
        "Гарри Поттер, все 7 книг",
        "Издательство «Махаон», в хорошем состоянии, без пометок. Отправлю Казпочтой.",
        "books",
        eth("0.008"),
        _ETH,
        "Шымкент",
        7,
        "books",
    ),
    _L(
        2,
        "kk",
        "Мектеп оқулықтары, 5-сынып",
        "2023–2024 оқу жылының толық жинағы. Беттері жыртылмаған, ішінде жазу жоқ.",
        "books",
        kzt(8_000),
        _KZT,
        "Қызылорда",
        3,
        "books",
    ),
    _L(
        2,
        "ru",
        "Зимний комбинезон, 110 см",
        "Тёплый, до −30 °C. Носили одну зиму, без пятен и затяжек.",
        "clothing",
        kzt(12_000),
        _KZT,
        "Қостанай",
        4,
        "jacket",
    ),
    _L(
        2,
        "en",
        "Teddy bear, 80 cm",
        "Soft and clean (machine washed), from a smoke-free home.",
        "kids",
        usd(10),
        _USD,
        "Шымкент",
        3,
        "teddy",
    ),
    _L(
        2,
        "kk",
        "Домбыра, үйеңкі ағашынан",
        "Шебер жасаған домбыра, үні таза әрі қоңыр. Қабымен бірге беріледі. Музыка мектебіне "
        "баратын балаға өте лайық.",
        "other",
        kzt(55_000),
        _KZT,
        "Тараз",
        5,
        "dombra",
        2,
    ),
    _L(
        2,
        "ru",
        "Стульчик для кормления",
        "Регулируется по высоте, столик снимается, легко моется. Ремни безопасности целые.",
        "kids",
        kzt(15_000),
        _KZT,
        "Ақтөбе",
        4,
        "chair",
    ),
    _L(
        2,
        "en",
        "Headway Intermediate, student's book + workbook",
        "A few pencil notes in the workbook, easy to erase. Audio CD included.",
        "books",
        usd(12),
        _USD,
        "Алматы",
        3,
        "book",
    ),
    # -- Yerlan: bikes, scooters, clothes for the winter
    _L(
        3,
        "ru",
        "Горный велосипед Merida Big Nine",
        'Колёса 29", рама L, обслужен этой весной. Гидравлические тормоза, новая цепь.',
        "bikes",
        eth("0.09"),
        _ETH,
        "Қарағанды",
        5,
        "bicycle",
        2,
    ),
    _L(
        3,
        "kk",
        "Шоссе велосипеді Giant Contend",
        "Рамасы M өлшемді, Shimano Claris. Шамамен 3 000 км жүрген, жыл сайын сервистен "
        "өткізіп тұрдым.",
        "bikes",
        usd(420),
        _USD,
        "Қарағанды",
        5,
        "bicycle",
    ),
    _L(
        3,
        "ru",
        "Электросамокат Xiaomi Pro 2",
        "Запас хода около 30 км, новые покрышки. Зарядка в комплекте.",
        "bikes",
        eth("0.06"),
        _ETH,
        "Павлодар",
        5,
        "scooter",
    ),
    _L(
        3,
        "en",
        "Cycling helmet + USB lights",
        "Helmet size M, front and rear USB lights, barely used.",
        "bikes",
        usd(25),
        _USD,
        "Қарағанды",
        4,
        "helmet",
    ),
    _L(
        3,
        "ru",
        "Зимние сапоги, 43 размер",
        "Натуральный мех внутри, как раз для карагандинских морозов. Носил один сезон.",
        "clothing",
        kzt(20_000),
        _KZT,
        "Қарағанды",
        4,
        "boots",
        2,
    ),
    _L(
        3,
        "kk",
        "Қысқы етік, 38 өлшем",
        "Әйелдер етігі, іші табиғи жүн. Бір маусым ғана киілді, табаны тозбаған.",
        "clothing",
        kzt(15_000),
        _KZT,
        "Өскемен",
        5,
        "boots",
    ),
    _L(
        3,
        "ru",
        "Кожаная куртка мужская, L",
        "Натуральная кожа, надевал пару раз — не подошла по размеру.",
        "clothing",
        usd(90),
        _USD,
        "Орал",
        6,
        "jacket",
    ),
    _L(
        3,
        "kk",
        "Ерлер пуховигі, 50 өлшем",
        "Жылы әрі жеңіл, капюшоны шешіледі. Бір қыс қана киілді.",
        "clothing",
        eth("0.01"),
        _ETH,
        "Астана",
        4,
        "jacket",
    ),
    _L(
        3,
        "en",
        "Snowboard boots, size 42",
        "Two seasons on Shymbulak, laces and liners in good shape.",
        "clothing",
        usd(45),
        _USD,
        "Алматы",
        4,
        "boots",
    ),
    _L(
        3,
        "ru",
        "Беговел Puky, от 2 лет",
        "Лёгкая алюминиевая рама, надувные колёса. Катались одно лето.",
        "bikes",
        kzt(18_000),
        _KZT,
        "Қарағанды",
        4,
        "kids_bicycle",
    ),
    _L(
        0,
        "kk",
        'Ноутбук Lenovo IdeaPad 3, 15,6"',
        "Core i5, 8 ГБ жедел жады, 512 ГБ SSD. Оқуға және кеңсе жұмысына өте ыңғайлы. "
        "Зарядтағышы бар.",
        "electronics",
        kzt(140_000),
        _KZT,
        "Қостанай",
        5,
        "laptop",
    ),
    _L(
        0,
        "kk",
        "Samsung мониторы, 27 дюйм",
        "Экранында өлі пиксель жоқ, тұғыры мен кабельдері бар. Үйден жұмыс істеуге керемет.",
        "electronics",
        eth("0.03"),
        _ETH,
        "Орал",
        6,
        "tv",
    ),
    _L(
        0,
        "ru",
        "Айфон XR на запчасти",
        "Продаю айфон на запчасти: после падения не включается, экран целый, корпус без "
        "вмятин. Торг уместен.",
        "phones",
        kzt(25_000),
        _KZT,
        "Тараз",
        5,
        "phone",
    ),
    _L(
        3,
        "en",
        "Kids' kick scooter, 3 wheels",
        "Light-up wheels, adjustable handlebar, for ages 3 to 6.",
        "bikes",
        usd(15),
        _USD,
        "Ақтау",
        4,
        "scooter",
    ),
]


# ---------------------------------------------------------------------------- seeding


def seed_demo_data(
    session: Session, deployment: Deployment, chain: Chain, upload_dir: Path | str | None = None
) -> bool:
    """Seeds a fresh database and commits; returns False (doing nothing) if users exist.

    The listing photos are written to ``upload_dir``: by default the app's ``UPLOAD_DIR``
    (see ``default_upload_dir``).
    """
    if session.scalar(select(func.count(User.id))):
        return False
    accounts = [a.lower() for a in chain.accounts]
    arbitrators = [a.lower() for a in deployment.arbitrators]
    now = utcnow()
    # Demo members "joined" a while ago so the new-account warning is not on every listing.
    joined = now - timedelta(days=120)

    sellers: list[User] = []
    for index, (name, languages, _city) in enumerate(SELLERS, start=1):
        if index < len(accounts) and accounts[index] not in arbitrators:
            sellers.append(_user(session, accounts[index], name, languages, joined))
    for offset, (name, languages) in enumerate(BUYERS):
        index = len(SELLERS) + 1 + offset
        if index < len(accounts) and accounts[index] not in arbitrators:
            _user(session, accounts[index], name, languages, joined)
    for address, (name, languages, bio) in zip(arbitrators, ARBITRATORS, strict=False):
        user = _user(session, address, name, languages, joined)
        profile = session.scalar(
            select(ArbitratorProfile).where(ArbitratorProfile.address == address)
        )
        if profile is None:
            profile = ArbitratorProfile(address=address)
            session.add(profile)
        profile.user_id = user.id
        profile.bio = bio
        profile.languages = languages

    folder = Path(upload_dir) if upload_dir is not None else default_upload_dir(session)
    written: list[Path] = []
    try:
        for position, demo in enumerate(LISTINGS):
            if demo.seller >= len(sellers):
                continue
            names = [
                _store_photo(folder, demo, position, number, written)
                for number in range(demo.photos)
            ]
            session.add(
                Listing(
                    ref="0x" + secrets.token_hex(32),
                    seller_id=sellers[demo.seller].id,
                    title=demo.title,
                    description=demo.description,
                    price=demo.price,
                    currency=demo.currency,
                    quantity=1,
                    category=demo.category,
                    city=demo.city,
                    delivery_days=demo.delivery_days,
                    photos=names,
                    status=ListingStatus.ACTIVE.value,
                    # Spread over the last days so "newest first" has an order to show.
                    created_at=now - timedelta(hours=6 * (len(LISTINGS) - position)),
                )
            )
        session.commit()
    except BaseException:
        session.rollback()
        for path in written:  # no photo files without the listings that name them
            path.unlink(missing_ok=True)
        raise
    return True


def default_upload_dir(session: Session) -> Path:
    """Where the app keeps listing photos, as seen from where the seed runs.

    In a Flask app context: its ``UPLOAD_DIR``. Otherwise the app's rule, ``<data>/uploads``,
    where the data folder is the one holding the database when that is the data folder's own
    SQLite file (``escrow.sqlite3``: the local stack seeds a data folder of its own, which the
    seeding process need not have in ``ESCROW_DATA_DIR``), else ``ESCROW_DATA_DIR``.
    """
    from flask import current_app, has_app_context

    from escrow import settings

    if has_app_context():
        return Path(current_app.config["UPLOAD_DIR"])
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    url = make_url(engine.url)
    if url.get_backend_name() == "sqlite" and url.database:
        database = Path(url.database)
        if database.name == SQLITE_NAME:
            return database.resolve().parent / "uploads"
    return settings.data_dir() / "uploads"


def _store_photo(
    folder: Path, demo: DemoListing, position: int, number: int, written: list[Path]
) -> str:
    """One drawn photo, cleaned by the upload code and saved under a name like an upload's."""
    from webapp.listings import PHOTO_NAME, clean_photo
    from webapp.seed_assets.photos import photo_bytes

    drawn = photo_bytes(
        demo.art, demo.category, demo.caption, f"{position}:{demo.title}", number, demo.color
    )
    data = clean_photo(drawn, "jpg", MAX_PHOTO_PIXELS)
    name = f"{secrets.token_hex(16)}.jpg"
    assert PHOTO_NAME.match(name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    written.append(path)
    return name


def _user(
    session: Session, address: str, name: str, languages: list[str], joined: datetime
) -> User:
    user = User(address=address, display_name=name, languages=list(languages), created_at=joined)
    session.add(user)
    session.flush()
    return user


def main(argv: list[str] | None = None) -> int:
    from escrow import settings
    from escrow.chain import connect
    from escrow.db.engine import database_url, make_engine, upgrade
    from escrow.deploy import load_deployment

    rpc_url = settings.rpc_url()
    if not rpc_url:
        print("Set ESCROW_RPC_URL to the chain's JSON-RPC address.", file=sys.stderr)
        return 2
    chain = connect(rpc_url)
    deployment = load_deployment(chain)
    if deployment is None:
        print(
            f"The escrow is not deployed on chain {chain.chain_id}; run `escrow deploy`.",
            file=sys.stderr,
        )
        return 2
    url = database_url()
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            # The web app's own rule for the upload folder: <ESCROW_DATA_DIR>/uploads.
            seeded = seed_demo_data(
                session, deployment, chain, upload_dir=settings.data_dir() / "uploads"
            )
    finally:
        engine.dispose()
    print(
        "Seeded the demo market." if seeded else "The database already has users; nothing seeded."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
