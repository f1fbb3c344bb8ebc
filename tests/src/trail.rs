//! CloudTrail log files for tests and benchmarks: large, gzipped, varied.

use std::io::Write;
use std::path::Path;

use serde_json::json;

/// A trail file as CloudTrail writes it to S3, gzipped (~500 bytes a record): records that
/// vary (ids, addresses) so it compresses as real ones do, with a known number of root
/// sign-ins and non-compliant users among them: returns (root sign-ins, users created).
pub fn write_trail(path: &Path, records: usize) -> (usize, usize) {
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hex = |n: usize| {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                char::from_digit((rng % 16) as u32, 16).unwrap()
            })
            .collect::<String>()
    };
    let mut enc = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        flate2::Compression::fast(),
    );
    enc.write_all(b"{\"Records\": [").unwrap();
    let (mut roots, mut users) = (0, 0);
    for i in 0..records {
        let minute = i % 60;
        let record = if i % 1000 == 7 {
            roots += 1;
            json!({"eventVersion": "1.08", "userIdentity": {"type": "Root", "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012"},
                   "eventTime": format!("2026-11-20T10:{minute:02}:00Z"), "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
                   "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.50", "eventType": "AwsConsoleSignIn",
                   "responseElements": {"ConsoleLogin": "Success"}, "eventID": hex(32), "recipientAccountId": "123456789012"})
        } else if i % 997 == 3 {
            users += 1;
            json!({"eventVersion": "1.08", "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123456789012"},
                   "eventTime": format!("2026-11-20T11:{minute:02}:00Z"), "eventSource": "iam.amazonaws.com", "eventName": "CreateUser",
                   "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
                   "requestParameters": {"userName": format!("Svc{}", hex(6))}, "eventID": hex(32), "recipientAccountId": "123456789012"})
        } else {
            json!({"eventVersion": "1.08",
                   "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::123456789012:assumed-role/app/{}", hex(16)), "accountId": "123456789012",
                                    "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/app"}, "attributes": {"creationDate": "2026-11-20T09:00:00Z"}}},
                   "eventTime": format!("2026-11-20T12:{minute:02}:00Z"), "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances",
                   "awsRegion": "eu-west-1", "sourceIPAddress": format!("10.{}.{}.{}", i % 250, (i / 250) % 250, i % 7),
                   "userAgent": format!("aws-sdk-go-v2/1.30 os/linux {}", hex(24)),
                   "requestParameters": {"filterSet": {"items": [{"name": "tag:team", "valueSet": {"items": [{"value": hex(40)}]}}]}},
                   "responseElements": null, "requestID": hex(32), "eventID": hex(32), "readOnly": true,
                   "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ec2.eu-west-1.amazonaws.com"},
                   "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": "123456789012", "eventCategory": "Management",
                   "padding": hex(700)})
        };
        if i > 0 {
            enc.write_all(b",").unwrap();
        }
        enc.write_all(&serde_json::to_vec(&record).unwrap())
            .unwrap();
    }
    enc.write_all(b"]}").unwrap();
    enc.finish().unwrap();
    (roots, users)
}
