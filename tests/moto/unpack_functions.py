"""Unpacks a deployed stack's functions as Lambda does, for the test harness to run them.

For each function: its configuration is read back from the Lambda API (environment,
timeout, the code's SHA-256), its zip is downloaded from the S3 object CloudFormation
created it from and checked against that SHA-256, and unpacked into the given directory
with the files' permissions (Lambda runs `bootstrap` from there).

usage: unpack_functions.py ENDPOINT REGION FUNCTIONS_JSON DIRS_JSON
  FUNCTIONS_JSON: logical id -> {"name", "code": {"bucket", "key"}} (cfn_patch's description)
  DIRS_JSON: logical id -> directory to unpack into
Prints logical id -> {"name", "environment", "timeout", "memory"}.
"""
import base64
import hashlib
import io
import json
import os
import sys
import zipfile

import boto3


def main():
    endpoint, region, functions, dirs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
    lam, s3 = boto3.client("lambda", **kw), boto3.client("s3", **kw)
    out = {}
    for logical, f in functions.items():
        config = lam.get_function_configuration(FunctionName=f["name"])
        code = s3.get_object(Bucket=f["code"]["bucket"], Key=f["code"]["key"])["Body"].read()
        sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
        if sha != config["CodeSha256"]:
            sys.exit("%s: the zip in s3://%s/%s is not the function's code (CodeSha256 %s, the zip's %s)"
                     % (f["name"], f["code"]["bucket"], f["code"]["key"], config["CodeSha256"], sha))
        root = dirs[logical]
        with zipfile.ZipFile(io.BytesIO(code)) as z:
            for info in z.infolist():
                path = z.extract(info, root)
                mode = info.external_attr >> 16
                if mode:
                    os.chmod(path, mode & 0o7777)
        if not os.access(os.path.join(root, "bootstrap"), os.X_OK):
            sys.exit("%s: its zip has no executable bootstrap" % f["name"])
        out[logical] = {
            "name": f["name"],
            "environment": (config.get("Environment") or {}).get("Variables") or {},
            "timeout": config.get("Timeout", 3),
            "memory": config.get("MemorySize", 128),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
