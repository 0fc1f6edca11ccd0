import pytest

from flowscope.geo.operators import EU_CONTROLLER_NOTE, operator_of, operator_record
from flowscope.geo.regions import adequacy, eea_members, eu_members, region_of


@pytest.mark.parametrize("cc,region", [
    ("DE", "eu"), ("de", "eu"), ("IE", "eu"), ("IT", "eu"), ("GR", "eu"), ("EL", "eu"),
    ("IS", "eea"), ("NO", "eea"), ("LI", "eea"),
    ("CH", "adequate"), ("GB", "adequate"), ("UK", "adequate"), ("JP", "adequate"), ("US", "adequate"),
    ("CN", "third"), ("RU", "third"), ("IN", "third"),
    (None, "unknown"), ("", "unknown"), ("USA", "unknown"), (42, "unknown"), ("Ü1", "unknown"),
])
def test_region_of(cc, region):
    assert region_of(cc) == region


def test_membership_counts():
    assert len(eu_members()) == 27
    assert len(eea_members()) == 30
    assert "GB" not in eu_members()


def test_adequacy_records():
    us = adequacy("US")
    assert us["date"] == "2023-07-10" and us["partial"] is True
    assert "2023/1795" in us["decision"] and "certified" in us["scope"]
    assert adequacy("CA")["partial"] is True
    assert adequacy("CH")["partial"] is False
    assert adequacy("DE") is None and adequacy(None) is None
    for cc in ["AD", "AR", "CA", "FO", "GG", "IL", "IM", "JP", "JE", "NZ", "KR", "CH", "GB", "UY", "US"]:
        rec = adequacy(cc)
        assert rec["date"] and rec["source"] and rec["decision"], cc


@pytest.mark.parametrize("asn", [32934, 63293, 54115, "AS32934"])
def test_meta_asns(asn):
    assert operator_of(asn, None, None) == ("Meta Platforms, Inc.", "US")


def test_services():
    assert operator_of(32934, "WhatsApp", None) == ("WhatsApp LLC", "US")
    assert operator_of(None, "whatsapp", None) == ("WhatsApp LLC", "US")
    assert operator_of(None, "facebook", None) == ("Meta Platforms, Inc.", "US")
    assert operator_of(32934, "instagram", None) == ("Meta Platforms, Inc.", "US")


def test_aws_global_accelerator_records_both():
    rec = operator_record(16509, "whatsapp", "AMAZON-02")
    assert (rec["operator"], rec["operator_country"]) == ("Amazon.com, Inc.", "US")
    assert (rec["serving"], rec["serving_country"]) == ("WhatsApp LLC", "US")
    assert "Ireland" in rec["eu_controller_note"]


def test_other_asns():
    assert operator_of(3269, None, "Telecom Italia") == ("Telecom Italia", None)
    assert operator_of(3269, None, None) == ("AS3269", None)
    assert operator_of(None, None, None) == (None, None)
    assert operator_of(True, None, None) == (None, None)
    assert "WhatsApp Ireland" in EU_CONTROLLER_NOTE and "Meta Platforms Ireland" in EU_CONTROLLER_NOTE
