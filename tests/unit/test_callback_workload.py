from google_token_operator.consent import workload as callback_workload
from google_token_operator.settings import Settings


def replicas(settings: Settings, wanted: bool) -> int:
    objects = callback_workload.callback_objects(settings, "gto", wanted)
    [deployment] = [item for item in objects if item["kind"] == "Deployment"]
    return int(deployment["spec"]["replicas"])


def test_scaled_to_zero_unless_wanted_or_always_on():
    assert replicas(Settings(), wanted=True) == 1
    assert replicas(Settings(), wanted=False) == 0
    assert replicas(Settings(callback_always_on=True), wanted=False) == 1


def test_callback_pod_has_no_api_token_and_runs_restricted():
    template = callback_workload.callback_pod_template(Settings(callback_image="img:1"), "gto")
    spec = template["spec"]
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    assert container["image"] == "img:1"
    assert container["args"][:1] == ["callback"]
    assert "http://google-token-operator.gto.svc:8082" in container["args"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
