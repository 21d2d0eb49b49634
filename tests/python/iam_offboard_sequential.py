"""The offboarding script an AWS admin writes first: AWS's documented way to delete an IAM user
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_users_remove.html#id_users_deleting_cli),
one call at a time, for each user named on the command line.

boto3 sends the same requests as the aws CLI. Retries are off, so every request moto's recorder
counts was sent once. Used by connectors/aws-iam/benches/floor.rs as the alternative revoked is
compared with; prints one JSON line: {"users": N, "seconds": S, "errors": [...]}.

    python iam_offboard_sequential.py --endpoint http://127.0.0.1:PORT user1 user2 ...
"""

import argparse
import json
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError


def code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def offboard(iam, user: str, errors: list) -> None:
    # The console password: deleted blindly, "none" is NoSuchEntity (the CLI's
    # `aws iam delete-login-profile`).
    try:
        iam.delete_login_profile(UserName=user)
    except ClientError as e:
        if code(e) != "NoSuchEntity":
            raise
    for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=user, AccessKeyId=k["AccessKeyId"])
    for c in iam.list_signing_certificates(UserName=user)["Certificates"]:
        iam.delete_signing_certificate(UserName=user, CertificateId=c["CertificateId"])
    for k in iam.list_ssh_public_keys(UserName=user)["SSHPublicKeys"]:
        iam.delete_ssh_public_key(UserName=user, SSHPublicKeyId=k["SSHPublicKeyId"])
    try:
        creds = iam.list_service_specific_credentials(UserName=user)
        for c in creds["ServiceSpecificCredentials"]:
            iam.delete_service_specific_credential(
                UserName=user,
                ServiceSpecificCredentialId=c["ServiceSpecificCredentialId"],
            )
    except (ClientError, ResponseParserError) as e:
        # moto does not implement this call (an HTML 500); the script goes on, as an admin would.
        errors.append(f"{user}: ListServiceSpecificCredentials {type(e).__name__}")
    for d in iam.list_mfa_devices(UserName=user)["MFADevices"]:
        iam.deactivate_mfa_device(UserName=user, SerialNumber=d["SerialNumber"])
        if ":mfa/" in d["SerialNumber"]:
            iam.delete_virtual_mfa_device(SerialNumber=d["SerialNumber"])
    for name in iam.list_user_policies(UserName=user)["PolicyNames"]:
        iam.delete_user_policy(UserName=user, PolicyName=name)
    for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=user, PolicyArn=p["PolicyArn"])
    for g in iam.list_groups_for_user(UserName=user)["Groups"]:
        iam.remove_user_from_group(UserName=user, GroupName=g["GroupName"])
    iam.delete_user(UserName=user)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("users", nargs="+")
    args = ap.parse_args()
    iam = boto3.client(
        "iam",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    errors: list = []
    start = time.monotonic()
    for user in args.users:
        offboard(iam, user, errors)
    seconds = time.monotonic() - start
    print(json.dumps({"users": len(args.users), "seconds": seconds, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
