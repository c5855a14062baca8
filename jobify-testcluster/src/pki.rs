//! Keys and certificates, made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The files of the cluster's PKI.
#[derive(Clone, Debug)]
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    /// The CA that signs the serving certificate and the client certificates.
    pub(crate) ca_cert: PathBuf,
    ca_key: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    /// The service-account signing key and its public half.
    pub(crate) sa_key: PathBuf,
    pub(crate) sa_pub: PathBuf,
}

fn openssl(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(Error::io("running openssl (is it installed?)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("openssl {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl Pki {
    /// Generates a CA, a serving certificate for `127.0.0.1` and `localhost`, and a
    /// service-account key pair in `dir`.
    pub(crate) fn generate(dir: &Path) -> Result<Pki, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let p = |n: &str| dir.join(n);
        let pki = Pki {
            dir: dir.to_owned(),
            ca_cert: p("ca.crt"),
            ca_key: p("ca.key"),
            serving_cert: p("apiserver.crt"),
            serving_key: p("apiserver.key"),
            sa_key: p("sa.key"),
            sa_pub: p("sa.pub"),
        };
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "3650"];
        ca.extend(EC);
        ca.extend([
            "-keyout",
            s(&pki.ca_key),
            "-out",
            s(&pki.ca_cert),
            "-subj",
            "/CN=jobify-testcluster-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca)?;
        pki.sign(
            "apiserver",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )?;
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            s(&pki.sa_key),
        ])?;
        openssl(&[
            "pkey",
            "-in",
            s(&pki.sa_key),
            "-pubout",
            "-out",
            s(&pki.sa_pub),
        ])?;
        Ok(pki)
    }

    /// A key and a certificate signed by the CA, `<dir>/<stem>.key` and `.crt`.
    fn sign(
        &self,
        stem: &str,
        subject: &str,
        extensions: &str,
    ) -> Result<(PathBuf, PathBuf), Error> {
        let key = self.dir.join(format!("{stem}.key"));
        let csr = self.dir.join(format!("{stem}.csr"));
        let cert = self.dir.join(format!("{stem}.crt"));
        let ext = self.dir.join(format!("{stem}.ext"));
        std::fs::write(&ext, extensions)
            .map_err(Error::io(format!("writing {}", ext.display())))?;
        let mut req = vec!["req", "-nodes"];
        req.extend(EC);
        req.extend(["-keyout", s(&key), "-out", s(&csr), "-subj", subject]);
        openssl(&req)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&self.ca_cert),
            "-CAkey",
            s(&self.ca_key),
            "-CAcreateserial",
            "-days",
            "3650",
            "-out",
            s(&cert),
            "-extfile",
            s(&ext),
        ])?;
        Ok((cert, key))
    }

    /// A client certificate for `user` in `groups`: `(cert, key)`.
    pub(crate) fn client(&self, user: &str, groups: &[&str]) -> Result<(PathBuf, PathBuf), Error> {
        let mut subject = format!("/CN={user}");
        for g in groups {
            subject.push_str("/O=");
            subject.push_str(g);
        }
        let stem: String = format!("user-{user}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.sign(
            &stem,
            &subject,
            "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n",
        )
    }
}
