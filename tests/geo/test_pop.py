import pytest

from flowscope.geo.pop import airports, pop_code, pop_location


@pytest.mark.parametrize("host,code", [
    ("media-mxp1-1.cdn.whatsapp.net", "MXP"),
    ("scontent.fdel1-1.fna.fbcdn.net", "DEL"),
    ("scontent.fDEL1-1.fna.fbcdn.net", "DEL"),
    ("scontent-mxp1-1.cdninstagram.com", "MXP"),
    ("whatsapp-chatd-edge-shv-01-fra3.facebook.com", "FRA"),
    ("edge-star-mini-shv-01-ams4.facebook.com", "AMS"),
    ("whatsapp-cdn-shv-01-lhr3.fbcdn.net", "LHR"),
    ("media-gru2-2.cdn.whatsapp.net", "GRU"),
    ("media-sin11-1.cdn.whatsapp.net", "SIN"),
    ("media-atl3-3.cdn.whatsapp.net", "ATL"),
    ("whatsapp-chatd-edge-shv-01-mia3.facebook.com", "MIA"),
    ("ae37.pr04.ams2.tfbnw.net", "AMS"),
    ("MEDIA-MXP1-1.CDN.WHATSAPP.NET.", "MXP"),
])
def test_pop_codes(host, code):
    assert pop_code(host) == code


@pytest.mark.parametrize("host", [
    "whatsapp-chatd-edge-shv-01-fml20.facebook.com",   # not a real IATA code
    "whatsapp-chatd-edge-shv-01-frt3.facebook.com",
    "media-xyz1-1.cdn.whatsapp.net",
    "g.whatsapp.net", "web.whatsapp.com", "mmg.whatsapp.net",
    "media-mxp1-1.cdn.example.com",                   # not a Meta domain
    "mxp1.evil.com",
])
def test_unknown_or_non_meta(host):
    assert pop_code(host) is None


@pytest.mark.parametrize("bad", [
    None, "", ".", "..", 42, b"media-mxp1-1.cdn.whatsapp.net", "a" * 10_000,
    "media-mxp1-1.cdn.whatsapp.net\x00", "médïa-mxp1-1.cdn.whatsapp.net",
    "-" * 300 + ".whatsapp.net", "media-\n-1.cdn.whatsapp.net", "fbcdn.net", "%s%n.whatsapp.net",
])
def test_hostile_never_crash(bad):
    assert pop_code(bad) is None


def test_airports_table():
    table = airports()
    assert len(table) >= 200
    for code in ["FRA", "AMS", "LHR", "CDG", "MAD", "MXP", "LIS", "BRU", "VIE", "WAW", "ARN",
                 "CPH", "HEL", "DUB", "PRG", "MRS", "MUC", "OTP", "SOF", "ZRH", "DEL", "GRU",
                 "SIN", "ATL", "MIA"]:
        assert code in table, code
    for city, cc, lat, lon in table.values():
        assert -90 <= lat <= 90 and -180 <= lon <= 180 and len(cc) == 2 and city


def test_pop_location():
    city, cc, lat, lon = pop_location("MXP")
    assert (city, cc) == ("Milan", "IT") and lat == pytest.approx(45.6306) and lon == pytest.approx(8.72811)
    assert pop_location("mxp")[1] == "IT"
    assert pop_location("FRA")[:2] == ("Frankfurt", "DE")
    assert pop_location("ZZZ") is None and pop_location(None) is None and pop_location("FRAX") is None
