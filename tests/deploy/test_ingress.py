"""The Ingress: TLS from a cert-manager Certificate for its host, ingress-nginx rate limits."""

from __future__ import annotations

from tests.deploy.manifests import DEPLOYABLE, Manifest, find, find_all

RATE_LIMITS = {
    "nginx.ingress.kubernetes.io/limit-rps": "20",
    "nginx.ingress.kubernetes.io/limit-burst-multiplier": "5",
    "nginx.ingress.kubernetes.io/limit-connections": "20",
}
WITH_INGRESS = tuple(name for name in DEPLOYABLE if name != "helm-custom")


def test_the_tls_secret_is_issued_for_the_ingress_host(rendering: list[Manifest]) -> None:
    """Nothing else writes the secret the Ingress names: a Certificate must, for its host."""
    for ingress in find_all(rendering, "Ingress"):
        (tls,) = ingress["spec"]["tls"]
        (certificate,) = [
            c
            for c in find_all(rendering, "Certificate")
            if c["spec"]["secretName"] == tls["secretName"]
        ]
        assert certificate["spec"]["dnsNames"] == tls["hosts"]
        assert tls["hosts"] == [rule["host"] for rule in ingress["spec"]["rules"]]
        issuer = certificate["spec"]["issuerRef"]
        assert (issuer["group"], issuer["kind"]) == ("cert-manager.io", "ClusterIssuer")


def test_no_certificate_without_an_ingress_to_use_it(
    renderings: dict[str, list[Manifest]],
) -> None:
    objects = renderings["helm-custom"]
    assert find_all(objects, "Ingress") == []
    assert find_all(objects, "Certificate") == []


def test_every_ingress_limits_each_client(renderings: dict[str, list[Manifest]]) -> None:
    limits = {
        name: {
            key: value
            for key, value in find(renderings[name], "Ingress")["metadata"]["annotations"].items()
            if key in RATE_LIMITS
        }
        for name in WITH_INGRESS
    }
    assert limits == dict.fromkeys(WITH_INGRESS, RATE_LIMITS)
