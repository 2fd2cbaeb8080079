"""Library retrieval as pure functions: what renders where, tags, macros, refusals; every manifest
checked against the official build_creative response schema."""
from __future__ import annotations

import pytest
from adcp.validation import validate_response

from creative_sync.samples import display_creative, video_creative
from streams.library.formats import BY_ID, STANDARD_AGENT_URL
from streams.library.retrieval import NotRenderable, build_manifest, renderable_formats, target_format


def built(creative, format_id, macros=None, *, named=True):
    manifest = build_manifest(creative, BY_ID[format_id], macros or {}, named_format=named,
                              agent_url=STANDARD_AGENT_URL).manifest
    outcome = validate_response("build_creative", {"status": "completed", "creative_manifest": manifest})
    assert outcome.valid, [(i.pointer, i.message) for i in outcome.issues]
    return manifest


def with_click(creative, url):
    return {**creative, "assets": {**creative["assets"], "click": {"asset_type": "url", "url_type": "clickthrough",
                                                                    "url": url}}}


def test_the_creatives_own_format_returns_its_assets_by_format_id_or_kind():
    banner = display_creative("b1")
    named = built(banner, "display_300x250")
    assert named["format_id"] == {"agent_url": STANDARD_AGENT_URL, "id": "display_300x250"}
    assert named["assets"]["main"]["url"] == "https://cdn.example.com/b1.png"
    canonical = built(banner, "display_300x250", named=False)
    assert canonical["format_kind"] == "image" and "format_id" not in canonical


def test_an_image_in_an_html5_slot_of_its_size_is_an_ad_tag_with_the_click_url():
    banner = with_click(display_creative("b1", name='Sale "50%"'), "https://shop.example/sale?src={MEDIA_BUY_ID}")
    manifest = built(banner, "html5_300x250")
    tag = manifest["assets"]["main"]["content"]
    assert manifest["assets"]["main"]["asset_type"] == "html"
    assert tag.startswith('<a href="https://shop.example/sale?src={MEDIA_BUY_ID}"')
    assert 'src="https://cdn.example.com/b1.png"' in tag and "Sale &quot;50%&quot;" in tag  # escaped


def test_a_hosted_video_in_a_vast_slot_is_an_inline_vast_document():
    manifest = built(video_creative("v1", duration_ms=15000), "video_vast_30s")
    vast = manifest["assets"]["main"]
    assert vast["asset_type"] == "vast" and vast["vast_version"] == "4.2" and vast["delivery_type"] == "inline"
    assert "<Duration>00:00:15</Duration>" in vast["content"] and "https://cdn.example.com/v1.mp4" in vast["content"]


def test_what_cannot_be_rendered_is_refused_with_a_reason_and_the_formats_that_fit():
    banner = display_creative("b1")
    with pytest.raises(NotRenderable) as wrong_size:
        built(banner, "display_728x90")
    assert wrong_size.value.code == "CREATIVE_SIZE_MISMATCH" and "300x250" in wrong_size.value.message
    with pytest.raises(NotRenderable) as wrong_kind:
        built(banner, "video_vast_30s")
    assert wrong_kind.value.code == "FORMAT_NOT_SUPPORTED"
    assert renderable_formats(banner) == ["display_300x250", "html5_300x250"]
    with pytest.raises(NotRenderable) as too_long:
        built(video_creative("v2", duration_ms=40000), "video_vast_30s")
    assert "40 s" in too_long.value.message and "30 s" in too_long.value.message
    with pytest.raises(NotRenderable) as unknown:
        target_format({"agent_url": "https://elsewhere.example", "id": "display_300x250"}, field_name="target_format_id",
                      own_agent_urls=("http://127.0.0.1:8080",))
    assert unknown.value.code == "FORMAT_NOT_SUPPORTED" and unknown.value.field == "target_format_id"


def test_macro_values_are_bound_encoded_and_missing_ones_kept_for_the_sales_agent():
    banner = with_click(display_creative("b1"), "https://shop.example/go?c={CLICK_URL}&cb={CACHEBUSTER}&g={GDPR_CONSENT}")
    built_ = build_manifest(banner, BY_ID["display_300x250"], {"CLICK_URL": "https://t.example/c?a=1", "GDPR_CONSENT": "x"},
                            named_format=True, agent_url=STANDARD_AGENT_URL)
    url = built_.manifest["assets"]["click"]["url"]
    assert url == "https://shop.example/go?c=https%3A%2F%2Ft.example%2Fc%3Fa%3D1&cb={CACHEBUSTER}&g=x"
    assert any("{GDPR_CONSENT}" in w for w in built_.warnings)  # consent frozen at build time is reported
    with pytest.raises(NotRenderable) as bad:
        build_manifest(banner, BY_ID["display_300x250"], {"click url": "x"}, named_format=True, agent_url=STANDARD_AGENT_URL)
    assert bad.value.field == "macro_values.click url"
