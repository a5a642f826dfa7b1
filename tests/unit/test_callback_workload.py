import argparse

from google_token_operator.consent import workload as callback_workload
from google_token_operator.consent.callback import serve as callback_cli
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


def test_callback_pod_takes_registry_resources_and_scheduling_from_the_settings():
    settings = Settings(
        callback_image_pull_secrets=("regcred", "mirror-pull"),
        callback_resources={"requests": {"cpu": "20m"}, "limits": {"memory": "256Mi"}},
        callback_node_selector={"node-role/edge": "true"},
        callback_tolerations=({"key": "edge", "operator": "Exists", "effect": "NoSchedule"},),
        callback_priority_class_name="consent-critical",
        callback_trust_proxy=True,
    )
    spec = callback_workload.callback_pod_template(settings, "gto")["spec"]
    default = callback_workload.callback_pod_template(Settings(), "gto")["spec"]

    assert {key: value for key, value in spec.items() if key not in default} == {
        "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror-pull"}],
        "nodeSelector": {"node-role/edge": "true"},
        "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "consent-critical",
    }
    [container] = spec["containers"]
    [default_container] = default["containers"]
    assert container["resources"] == {"requests": {"cpu": "20m"}, "limits": {"memory": "256Mi"}}
    assert container["args"] == [*default_container["args"], "--trust-proxy"]
    unchanged = {key: value for key, value in default.items() if key != "containers"}
    assert {key: spec[key] for key in unchanged} == unchanged


def test_unset_workload_settings_leave_the_pod_as_the_manifests_have_it():
    spec = callback_workload.callback_pod_template(Settings(), "gto")["spec"]
    [container] = spec["containers"]

    assert not {"imagePullSecrets", "nodeSelector", "tolerations", "priorityClassName"} & set(spec)
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "48Mi"},
        "limits": {"memory": "128Mi"},
    }
    assert "--trust-proxy" not in container["args"]


def test_the_callback_command_accepts_the_args_the_pod_is_given():
    parser = argparse.ArgumentParser()
    callback_cli.configure_parser(parser)
    for trust_proxy in (False, True):
        settings = Settings(callback_trust_proxy=trust_proxy)
        [container] = callback_workload.callback_pod_template(settings, "gto")["spec"]["containers"]
        args = parser.parse_args(container["args"][1:])
        assert args.trust_proxy is trust_proxy
        assert args.operator_url == "http://google-token-operator.gto.svc:8082"
