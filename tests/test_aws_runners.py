"""Bedrock and SageMaker runners through botocore's Stubber (the paid-API edge), via the engine."""
import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from fmeval.engine import Engine, EngineOptions
from fmeval.errors import UserError
from fmeval.model_runners.aws import BedrockRunner, SageMakerRunner

OPTIONS = EngineOptions(max_concurrency=1, max_retries=2, retry_base_delay_s=0.001)  # Stubber answers in order
CREDENTIALS = {"aws_access_key_id": "AKIAPLANTEDKEY000001", "aws_secret_access_key": "planted/secret/value/xyz"}


def client(service):
    return boto3.client(service, region_name="us-east-1", **CREDENTIALS)


def body(payload):
    raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return StreamingBody(io.BytesIO(raw), len(raw))


def converse_response(text):
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
        "metrics": {"latencyMs": 10},
    }


def test_bedrock_converse_sends_messages_system_prompt_and_inference_config():
    bedrock = client("bedrock-runtime")
    runner = BedrockRunner("anthropic.claude-test", system_prompt="Be brief.", max_new_tokens=20, temperature=0.5,
                           client=bedrock)
    with Stubber(bedrock) as stub:
        stub.add_response("converse", converse_response("Paris"), {
            "modelId": "anthropic.claude-test",
            "messages": [{"role": "user", "content": [{"text": "Capital of France?"}]}],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 20, "temperature": 0.5, "topP": 1.0},
        })
        with Engine(runner, options=OPTIONS) as engine:
            (output,) = engine.generate(["Capital of France?"])
        stub.assert_no_pending_responses()
    assert output.output == "Paris" and output.error is None
    assert runner.client() is bedrock  # one client, reused


def test_bedrock_throttling_is_retried():
    bedrock = client("bedrock-runtime")
    runner = BedrockRunner("m", client=bedrock)
    with Stubber(bedrock) as stub:
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_client_error("converse", service_error_code="ServiceUnavailableException", http_status_code=503)
        stub.add_response("converse", converse_response("ok"), {"modelId": "m", "messages": ANY, "inferenceConfig": ANY})
        with Engine(runner, options=OPTIONS) as engine:
            (output,) = engine.generate(["hi"])
    assert output.output == "ok"
    report = engine.report()
    assert report["retries"] == 2 and report["throttled"] == 1


def test_bedrock_invoke_model_with_content_template_and_jmespath():
    bedrock = client("bedrock-runtime")
    runner = BedrockRunner(
        "amazon.titan-test", client=bedrock,
        content_template='{"inputText": $prompt, "textGenerationConfig": {"maxTokenCount": 10}}',
        output="results[0].outputText", log_probability="results[0].logProb",
    )
    with Stubber(bedrock) as stub:
        stub.add_response(
            "invoke_model", {"body": body({"results": [{"outputText": "Tokyo", "logProb": -1.25}]}), "contentType": "application/json"},
            {"modelId": "amazon.titan-test", "body": '{"inputText": "Say \\"hi\\"", "textGenerationConfig": {"maxTokenCount": 10}}',
             "contentType": "application/json", "accept": "application/json"},
        )
        stub.add_response("invoke_model", {"body": body({"results": [{"outputText": "x", "logProb": -7.5}]}), "contentType": "application/json"}, None)
        with Engine(runner, options=OPTIONS) as engine:
            (output,) = engine.generate(['Say "hi"'])
            (scored,) = engine.log_probability(["some sentence"])
    assert (output.output, output.log_probability) == ("Tokyo", -1.25)
    assert scored.log_probability == -7.5 and runner.capabilities.log_probability


def test_bedrock_malformed_bodies_are_retried_then_recorded():
    bedrock = client("bedrock-runtime")
    runner = BedrockRunner("m", client=bedrock, content_template='{"inputText": $prompt}', output="results[0].outputText")
    with Stubber(bedrock) as stub:
        stub.add_response("invoke_model", {"body": body(b"<html>oops"), "contentType": "text/html"}, None)
        stub.add_response("invoke_model", {"body": body({"unexpected": 1}), "contentType": "application/json"}, None)
        stub.add_response("invoke_model", {"body": body({"results": []}), "contentType": "application/json"}, None)
        with Engine(runner, options=OPTIONS) as engine:
            (output,) = engine.generate(["hi"])
    assert output.output is None
    assert "malformed response" in output.error and "results[0].outputText" in output.error
    assert engine.report()["retries"] == 2


def test_bedrock_validation_error_is_not_retried():
    bedrock = client("bedrock-runtime")
    with Stubber(bedrock) as stub:
        stub.add_client_error("converse", service_error_code="ValidationException", service_message="bad model id")
        with Engine(BedrockRunner("m", client=bedrock), options=OPTIONS) as engine:
            (output,) = engine.generate(["hi"])
    assert "ValidationException: bad model id" in output.error and engine.report()["retries"] == 0


def test_sagemaker_endpoint_happy_path_throttling_and_identity():
    sagemaker = client("sagemaker-runtime")
    runner = SageMakerRunner(
        "my-endpoint", client=sagemaker, content_template='{"inputs": $prompt, "parameters": {"max_new_tokens": 8}}',
        output="[0].generated_text", inference_component="ic-1",
    )
    with Stubber(sagemaker) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
        stub.add_response("invoke_endpoint", {"Body": body([{"generated_text": "42"}])}, {
            "EndpointName": "my-endpoint", "Body": '{"inputs": "6 x 7?", "parameters": {"max_new_tokens": 8}}',
            "ContentType": "application/json", "Accept": "application/json", "InferenceComponentName": "ic-1",
        })
        with Engine(runner, options=OPTIONS) as engine:
            (output,) = engine.generate(["6 x 7?"])
    assert output.output == "42" and engine.report()["throttled"] == 1
    identity = json.dumps(runner.identity())
    assert "my-endpoint" in identity and "AKIA" not in identity and "secret" not in identity


def test_aws_runner_configuration_is_checked():
    with pytest.raises(UserError, match=r"must contain one of \$prompt or \$features"):
        SageMakerRunner("e", content_template='{"inputs": "x"}', output="a")
    with pytest.raises(UserError, match="not JSON"):
        SageMakerRunner("e", content_template="{inputs: $prompt}", output="a")
    with pytest.raises(UserError, match="give an `output` JMESPath"):
        SageMakerRunner("e", content_template='{"inputs": $prompt}')
    with pytest.raises(UserError, match="need a content_template"):
        BedrockRunner("m", output="a")
