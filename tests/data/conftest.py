"""Tiny MovieLens files in every layout, written to tmp_path, shared by the tfrec.data tests.

The same 3 users / 5 movies / 10 ratings are written as GroupLens 100k files and as RecBole
atomic files, so tests can check both parse to identical tables. Expected values are spelled
out here so tests compare with numbers worked out by hand.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

# (user, movie, rating, timestamp) in file order. User 1 has a timestamp tie (rows 1 and 3).
RATINGS = [
    ("1", "1", 5, 100),
    ("1", "2", 3, 300),
    ("1", "3", 4, 200),
    ("1", "5", 2, 300),
    ("2", "1", 4, 50),
    ("2", "4", 1, 60),
    ("3", "2", 5, 10),
    ("3", "3", 3, 20),
    ("3", "4", 4, 30),
    ("3", "5", 2, 40),
]
# movie id, title (TFDS form), 100k genre flag names, expected TFDS label ids
MOVIES = [
    ("1", "Toy Story (1995)", ["Animation", "Children", "Comedy"], [2, 3, 4]),
    ("2", "GoldenEye (1995)", ["Action", "Adventure", "Thriller"], [0, 1, 16]),
    ("3", "Four Rooms (1995)", ["Thriller"], [16]),
    ("4", "unknown", ["Unknown"], [17]),
    ("5", "Café Society, The (1990)", ["Drama"], [7]),
]
# user id, age, gender, occupation, zip
USERS = [("1", 24, "M", "technician", "85711"), ("2", 53, "F", "other", "94043")]
USERS += [("3", 17, "M", "student", "T8H1N")]
FLAGS = [
    "Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def write_100k(directory: Path) -> Path:
    """Writes GroupLens-style u.data / u.item / u.user (latin-1) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data = "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in RATINGS)
    (directory / "u.data").write_text(data, encoding="latin-1")
    lines = []
    for movie, title, genres, _ in MOVIES:
        flags = "|".join("1" if g in genres else "0" for g in FLAGS)
        date = "" if title == "unknown" else "01-Jan-1995"
        lines.append(f"{movie}|{title}|{date}||http://example.com/{movie}|{flags}\n")
    (directory / "u.item").write_text("".join(lines), encoding="latin-1")
    users = "".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, a, g, o, z in USERS)
    (directory / "u.user").write_text(users, encoding="latin-1")
    (directory / "README").write_text("tiny test copy\n")
    return directory


def write_recbole(directory: Path) -> Path:
    """Writes the same data as RecBole atomic files (titles split, genres space-separated)."""
    directory.mkdir(parents=True, exist_ok=True)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    inter += "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in RATINGS)
    (directory / "ml-100k.inter").write_text(inter)
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    recbole_names = {"Children": "Children's", "Unknown": "unknown"}
    for movie, title, genres, _ in MOVIES:
        if title == "unknown":
            name, year = "unkonwn", "unkonwn"
        else:
            name, year = title[: -len(" (1995)")], title[-5:-1]
        classes = " ".join(recbole_names.get(g, g) for g in genres)
        item += f"{movie}\t{name}\t{year}\t{classes}\n"
    (directory / "ml-100k.item").write_text(item, encoding="utf-8")
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    user += "".join(f"{u}\t{a}\t{g}\t{o}\t{z}\n" for u, a, g, o, z in USERS)
    (directory / "ml-100k.user").write_text(user)
    return directory


def write_1m(directory: Path) -> Path:
    """Writes ml-1m style '::' files: 2 users (one K-12 student), 3 movies, 4 ratings."""
    directory.mkdir(parents=True, exist_ok=True)
    ratings = ["10::20::5::978300760", "10::30::3::978302109", "11::20::4::978301968"]
    ratings.append("11::40::1::978300275")
    (directory / "ratings.dat").write_text("\n".join(ratings) + "\n", encoding="latin-1")
    movies = [
        "20::Toy Story (1995)::Animation|Children's|Comedy",
        "30::Star Wars: Episode IV (1977)::Action|Sci-Fi",
        "40::Amélie (2001)::Comedy|Romance",
    ]
    (directory / "movies.dat").write_text("\n".join(movies) + "\n", encoding="latin-1")
    users = ["10::F::1::10::48067", "11::M::56::16::70072"]
    (directory / "users.dat").write_text("\n".join(users) + "\n", encoding="latin-1")
    return directory


def write_csv(directory: Path) -> Path:
    """Writes 20m/25m-style csv files with quoted titles and half-star ratings."""
    directory.mkdir(parents=True, exist_ok=True)
    ratings = "userId,movieId,rating,timestamp\n1,10,3.5,1112486027\n2,10,4.0,1112484676\n"
    ratings += "10,200,0.5,1112484819\n"
    (directory / "ratings.csv").write_text(ratings)
    movies = (
        "movieId,title,genres\n"
        '10,"American President, The (1995)",Comedy|Drama|Romance\n'
        '200,"Dr. ""Who"" (2005)",(no genres listed)\n'
        "3000,Avatar (2009),Action|IMAX\n"
    )
    (directory / "movies.csv").write_text(movies)
    return directory


def zip_dir(directory: Path, archive: Path, folder: str) -> Path:
    """Zips every file of ``directory`` under ``folder/`` (like the GroupLens zips)."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(directory.iterdir()):
            zf.write(path, f"{folder}/{path.name}")
    return archive


@pytest.fixture
def files():
    """The writer helpers and expected constants, for tests (importlib mode: no imports)."""

    class Files:
        ratings, movies, users, flags = RATINGS, MOVIES, USERS, FLAGS
        write_100k = staticmethod(write_100k)
        write_recbole = staticmethod(write_recbole)
        write_1m = staticmethod(write_1m)
        write_csv = staticmethod(write_csv)
        zip_dir = staticmethod(zip_dir)

    return Files


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Keeps every test away from the real cache and the real GroupLens server."""
    monkeypatch.setenv("TFREC_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFREC_GROUPLENS_URL", "http://127.0.0.1:9/unreachable")
