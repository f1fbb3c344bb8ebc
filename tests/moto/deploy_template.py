"""Deploys a SAM template into moto as it ships, straight from the checkout (without
`aws cloudformation package`): what most stack tests use. `tests/moto/stack_deployer.py`
does CloudFormation's job; this script stands in for `package` (each function's CodeUri
becomes an S3 object holding a stand-in zip) and prints the deployment as JSON: resources
(physical ids, attributes, resolved properties), outputs with export names, Lambda
functions (binary from `CodeUri`, resolved environment) and SQS event source mappings.
Functions and mappings are created in moto but never run by it: the test harness runs
the real binaries and the pollers.

usage: deploy_template.py TEMPLATE STACK_NAME ENDPOINT [--parameters JSON] [--exports JSON]
"""
import argparse
import io
import json
import os
import re
import sys
import zipfile

from samtranslator.yaml_helper import yaml_parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack_deployer import DeployError, Deployment  # noqa: E402

REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
CODE_BUCKET = "deepalert-test-code"


def dummy_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# run by the test harness, not by moto\n")
    return buf.getvalue()


def binaries(template):
    """Function logical id -> binary name, from `CodeUri: …/target/lambda/<name>/bootstrap.zip`."""
    glob = ((template.get("Globals") or {}).get("Function") or {}).get("CodeUri")
    out = {}
    for logical, r in template["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        uri = (r.get("Properties") or {}).get("CodeUri") or glob
        m = re.search(r"target/lambda/([^/]+)/bootstrap\.zip$", uri or "")
        if not m:
            raise DeployError("%s: CodeUri %r is not target/lambda/<binary>/bootstrap.zip" % (logical, uri))
        out[logical] = m.group(1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("template")
    ap.add_argument("stack_name")
    ap.add_argument("endpoint")
    ap.add_argument("--parameters", default="{}")
    ap.add_argument("--exports", default="{}")
    args = ap.parse_args()
    with open(args.template, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    bins = binaries(sam)
    stack = Deployment(args.stack_name, args.endpoint, REGION)
    # What `aws cloudformation package` does before the transform runs: each function's
    # code becomes an S3 object (a stand-in: the harness runs the binary itself).
    s3 = stack.aws("s3")
    try:
        if REGION == "us-east-1":
            s3.create_bucket(Bucket=CODE_BUCKET)
        else:
            s3.create_bucket(Bucket=CODE_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for logical in bins:
        s3.put_object(Bucket=CODE_BUCKET, Key="%s.zip" % logical, Body=dummy_zip())
        sam["Resources"][logical].setdefault("Properties", {})["CodeUri"] = "s3://%s/%s.zip" % (CODE_BUCKET, logical)
    if "Globals" in sam and "Function" in sam["Globals"]:
        sam["Globals"]["Function"].pop("CodeUri", None)
    stack.apply(sam, json.loads(args.parameters), json.loads(args.exports))
    out = stack.describe()
    for logical, f in out["functions"].items():
        f["binary"] = bins.get(logical)
    json.dump(out, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    try:
        main()
    except DeployError as e:
        print("deploy_template: %s" % e, file=sys.stderr)
        sys.exit(2)
