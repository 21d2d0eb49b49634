//! The stand-in's object store and the API server's write rules, without HTTP
//!
//! One `resourceVersion` counter for the whole store, as etcd's revision: every create, update
//! and delete takes the next one; an update that changes nothing keeps the object's version (the
//! API server skips no-op writes). Objects keep `uid` and `creationTimestamp` for life.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A resource the stand-in serves
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Res {
    /// `rbac.authorization.k8s.io/v1` ClusterRoleBinding (cluster-scoped)
    ClusterRoleBinding,
    /// `rbac.authorization.k8s.io/v1` RoleBinding
    RoleBinding,
    /// `v1` ServiceAccount
    ServiceAccount,
    /// `v1` Secret
    Secret,
}

impl Res {
    /// The resource's plural name in paths and in a Status's `details.kind`
    pub fn plural(self) -> &'static str {
        match self {
            Res::ClusterRoleBinding => "clusterrolebindings",
            Res::RoleBinding => "rolebindings",
            Res::ServiceAccount => "serviceaccounts",
            Res::Secret => "secrets",
        }
    }

    /// The object's `kind`
    pub fn kind(self) -> &'static str {
        match self {
            Res::ClusterRoleBinding => "ClusterRoleBinding",
            Res::RoleBinding => "RoleBinding",
            Res::ServiceAccount => "ServiceAccount",
            Res::Secret => "Secret",
        }
    }

    /// The API group (`""` for the core group)
    pub fn group(self) -> &'static str {
        match self {
            Res::ClusterRoleBinding | Res::RoleBinding => "rbac.authorization.k8s.io",
            _ => "",
        }
    }

    /// The object's `apiVersion`
    pub fn api_version(self) -> &'static str {
        match self {
            Res::ClusterRoleBinding | Res::RoleBinding => "rbac.authorization.k8s.io/v1",
            _ => "v1",
        }
    }

    /// Whether objects live in a namespace
    pub fn namespaced(self) -> bool {
        self != Res::ClusterRoleBinding
    }

    /// `clusterrolebindings.rbac.authorization.k8s.io`, as the API server's messages name it
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    /// Whether a PUT of a missing object creates it (true for RBAC objects, false for core ones)
    fn create_on_update(self) -> bool {
        matches!(self, Res::ClusterRoleBinding | Res::RoleBinding)
    }
}

/// An object's key: resource, namespace (`""` when cluster-scoped), name
pub type Key = (Res, String, String);

/// A refusal, as the API server answers it: status code and `Status` body
pub type Refusal = (u16, Value);

/// A `Status` object with `status: Failure`
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn not_found(res: Res, name: &str) -> Refusal {
    (
        404,
        status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", res.qualified()),
            Some(json!({"name": name, "group": res.group(), "kind": res.plural()})),
        ),
    )
}

fn conflict(res: Res, name: &str, why: &str) -> Refusal {
    (
        409,
        status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                res.qualified()
            ),
            Some(json!({"name": name, "group": res.group(), "kind": res.plural()})),
        ),
    )
}

fn invalid(res: Res, name: &str, field: &str, why: &str) -> Refusal {
    (
        422,
        status(
            422,
            "Invalid",
            &format!("{} \"{name}\" is invalid: {field}: {why}", res.kind()),
            Some(
                json!({"name": name, "group": res.group(), "kind": res.kind(),
                        "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}]}),
            ),
        ),
    )
}

fn bad_request(message: &str) -> Refusal {
    (400, status(400, "BadRequest", message, None))
}

/// A `kind: User` subject
pub fn user(name: &str) -> Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

/// A `kind: Group` subject
pub fn group(name: &str) -> Value {
    json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

/// A `kind: ServiceAccount` subject
pub fn service_account(namespace: &str, name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

/// The cluster's objects
#[derive(Debug, Default)]
pub struct World {
    revision: u64,
    uids: u64,
    objects: BTreeMap<Key, Value>,
    /// Writes (create, update, delete) the store took, in order: (verb, key)
    pub writes: Vec<(String, Key)>,
}

impl World {
    fn next_rv(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        let r: u64 = rand::random();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            (self.uids >> 12) & 0xfff,
            self.uids & 0xfff,
            r & 0xffff_ffff_ffff
        )
    }

    /// The store's current revision (a list's `metadata.resourceVersion`)
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// One object as stored (with `kind` and `apiVersion`)
    pub fn get(&self, res: Res, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(res, ns_of(res, namespace), name.to_string()))
    }

    /// Every object of `res` (in `namespace`, or in every namespace when `None`), by key order
    pub fn list(&self, res: Res, namespace: Option<&str>) -> Vec<(Key, Value)> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| *r == res && namespace.is_none_or(|n| n == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Creates an object as `POST` does: 201 with the stored object, or a refusal
    pub fn create(&mut self, res: Res, namespace: &str, mut obj: Value) -> Result<Value, Refusal> {
        if !obj.is_object() {
            return Err(bad_request("expected an object"));
        }
        check_type(res, &obj)?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Err(invalid(
                res,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        let ns = ns_of(res, namespace);
        if res.namespaced() {
            match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(bad_request("the namespace of the provided object does not match the namespace sent on the request"))
                }
                _ => {}
            }
        }
        validate(res, &name, &obj)?;
        let key = (res, ns.clone(), name.clone());
        if self.objects.contains_key(&key) {
            return Err((
                409,
                status(
                    409,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", res.qualified()),
                    Some(json!({"name": name, "group": res.group(), "kind": res.plural()})),
                ),
            ));
        }
        let uid = self.next_uid();
        let rv = self.next_rv();
        let m = &mut obj["metadata"];
        m["uid"] = json!(uid);
        m["resourceVersion"] = json!(rv);
        m["creationTimestamp"] = json!(now_rfc3339());
        if res.namespaced() {
            m["namespace"] = json!(ns);
        }
        obj["kind"] = json!(res.kind());
        obj["apiVersion"] = json!(res.api_version());
        if res == Res::Secret {
            self.fill_token(&ns, &mut obj)?;
        }
        self.objects.insert(key.clone(), obj.clone());
        self.writes.push(("create".into(), key));
        Ok(obj)
    }

    /// A token Secret gets its ServiceAccount's uid and a token, as the token controller does
    fn fill_token(&mut self, ns: &str, obj: &mut Value) -> Result<(), Refusal> {
        if obj.get("type").and_then(Value::as_str) != Some("kubernetes.io/service-account-token") {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let sa = obj
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if sa.is_empty() {
            return Err(invalid(
                Res::Secret,
                &name,
                "metadata.annotations[kubernetes.io/service-account.name]",
                "Required value",
            ));
        }
        if let Some(uid) = self
            .get(Res::ServiceAccount, ns, &sa)
            .and_then(|s| s.pointer("/metadata/uid"))
            .cloned()
        {
            obj["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = uid;
            let token: String = (0..32)
                .map(|_| format!("{:x}", rand::random::<u8>() & 15))
                .collect();
            obj["data"] = json!({
                "token": base64_std(token.as_bytes()),
                "namespace": base64_std(ns.as_bytes()),
            });
        }
        Ok(())
    }

    /// Replaces an object as `PUT` does: the stored object and whether it was created, or a refusal
    pub fn update(
        &mut self,
        res: Res,
        namespace: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<(Value, bool), Refusal> {
        if !obj.is_object() {
            return Err(bad_request("expected an object"));
        }
        check_type(res, &obj)?;
        let body_name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if body_name != name {
            return Err(bad_request(&format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let ns = ns_of(res, namespace);
        let key = (res, ns.clone(), name.to_string());
        let sent_rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let Some(current) = self.objects.get(&key).cloned() else {
            if !sent_rv.is_empty() || !res.create_on_update() {
                return Err(not_found(res, name));
            }
            return self.create(res, &ns, obj).map(|o| (o, true));
        };
        let cur = |p: &str| {
            current
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            if !uid.is_empty() && uid != cur("/metadata/uid") {
                return Err(conflict(
                    res,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        cur("/metadata/uid")
                    ),
                ));
            }
        }
        if !sent_rv.is_empty() && sent_rv != cur("/metadata/resourceVersion") {
            return Err(conflict(
                res,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        validate(res, name, &obj)?;
        if matches!(res, Res::ClusterRoleBinding | Res::RoleBinding)
            && obj.get("roleRef") != current.get("roleRef")
        {
            return Err(invalid(
                res,
                name,
                "roleRef",
                "Invalid value: cannot change roleRef",
            ));
        }
        // What the server keeps whatever the body says.
        for k in ["uid", "creationTimestamp", "namespace", "resourceVersion"] {
            match current["metadata"].get(k) {
                Some(v) => obj["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        obj["kind"] = json!(res.kind());
        obj["apiVersion"] = json!(res.api_version());
        if res == Res::Secret {
            // Token data is the controller's; a PUT without it keeps it.
            if obj.get("data").is_none() {
                if let Some(d) = current.get("data") {
                    obj["data"] = d.clone();
                }
            }
        }
        if obj == current {
            return Ok((current, false));
        }
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects.insert(key.clone(), obj.clone());
        self.writes.push(("update".into(), key));
        Ok((obj, false))
    }

    /// Patches an object as `PATCH` with `Content-Type: application/json-patch+json` (RFC 6902)
    /// does: the operations apply to the object as stored now (no resourceVersion needed, so no
    /// conflict with a write that came in between); a failed operation (a `test` that does not
    /// hold, a path that is missing) is `422` and changes nothing; the result is then checked
    /// and stored as an update (roleRef immutable, a no-op keeps the version)
    pub fn patch(
        &mut self,
        res: Res,
        namespace: &str,
        name: &str,
        ops: &Value,
    ) -> Result<Value, Refusal> {
        let ns = ns_of(res, namespace);
        let Some(current) = self
            .objects
            .get(&(res, ns.clone(), name.to_string()))
            .cloned()
        else {
            return Err(not_found(res, name));
        };
        let Some(ops) = ops.as_array() else {
            return Err(bad_request(
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ));
        };
        let mut doc = current;
        for op in ops {
            if let Err(why) = json_patch_op(&mut doc, op) {
                // NewGenericServerResponse(422, ...) with the patch library's error as the cause
                return Err((
                    422,
                    status(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request",
                        Some(
                            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": why}]}),
                        ),
                    ),
                ));
            }
        }
        self.update(res, &ns, name, doc).map(|(o, _)| o)
    }

    /// Deletes an object as `DELETE` does with `options` (a `DeleteOptions` or nothing): the
    /// `Success` Status, or a refusal (404, or 409 on a precondition)
    pub fn delete(
        &mut self,
        res: Res,
        namespace: &str,
        name: &str,
        options: Option<&Value>,
    ) -> Result<Value, Refusal> {
        let ns = ns_of(res, namespace);
        let key = (res, ns.clone(), name.to_string());
        let Some(current) = self.objects.get(&key) else {
            return Err(not_found(res, name));
        };
        let cur = |p: &str| {
            current
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if let Some(pre) = options.and_then(|o| o.get("preconditions")) {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
                if uid != cur("/metadata/uid") {
                    return Err(conflict(
                        res,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            cur("/metadata/uid")
                        ),
                    ));
                }
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
                if rv != cur("/metadata/resourceVersion") {
                    return Err(conflict(
                        res,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            cur("/metadata/resourceVersion")
                        ),
                    ));
                }
            }
        }
        let uid = cur("/metadata/uid");
        self.objects.remove(&key);
        self.next_rv();
        self.writes.push(("delete".into(), key));
        if res == Res::ServiceAccount {
            // The token controller deletes the ServiceAccount's token Secrets.
            let tied: Vec<Key> = self
                .objects
                .iter()
                .filter(|((r, n, _), v)| {
                    *r == Res::Secret
                        && *n == ns
                        && v.pointer("/metadata/annotations/kubernetes.io~1service-account.uid")
                            .and_then(Value::as_str)
                            == Some(uid.as_str())
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in tied {
                self.objects.remove(&k);
                self.next_rv();
                self.writes.push(("delete".into(), k));
            }
        }
        Ok(json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": res.group(), "kind": res.plural(), "uid": uid},
        }))
    }

    // Seeding helpers: they panic on a refusal (a test's own mistake).

    fn seed(&mut self, res: Res, ns: &str, obj: Value) -> String {
        match self.create(res, ns, obj) {
            Ok(o) => o
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            Err((code, s)) => panic!("seeding {} {ns}: {code} {s}", res.kind()),
        }
    }

    /// A ClusterRoleBinding of ClusterRole `role` to `subjects`; returns its uid
    pub fn cluster_role_binding(&mut self, name: &str, role: &str, subjects: &[Value]) -> String {
        self.seed(
            Res::ClusterRoleBinding,
            "",
            json!({"metadata": {"name": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": subjects}),
        )
    }

    /// A RoleBinding in `ns` of Role `role` to `subjects`; returns its uid
    pub fn role_binding(&mut self, ns: &str, name: &str, role: &str, subjects: &[Value]) -> String {
        self.seed(
            Res::RoleBinding,
            ns,
            json!({"metadata": {"name": name, "namespace": ns},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                   "subjects": subjects}),
        )
    }

    /// A ServiceAccount with `annotations`; returns its uid
    pub fn service_account(
        &mut self,
        ns: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> String {
        let ann: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.seed(
            Res::ServiceAccount,
            ns,
            json!({"metadata": {"name": name, "namespace": ns, "annotations": ann}}),
        )
    }

    /// A long-lived token Secret of ServiceAccount `sa` (which must exist); returns its uid
    pub fn token_secret(&mut self, ns: &str, name: &str, sa: &str) -> String {
        self.seed(
            Res::Secret,
            ns,
            json!({"metadata": {"name": name, "namespace": ns,
                                "annotations": {"kubernetes.io/service-account.name": sa}},
                   "type": "kubernetes.io/service-account-token"}),
        )
    }

    /// An `Opaque` Secret; returns its uid
    pub fn opaque_secret(&mut self, ns: &str, name: &str) -> String {
        self.seed(
            Res::Secret,
            ns,
            json!({"metadata": {"name": name, "namespace": ns}, "type": "Opaque",
                   "data": {"password": base64_std(b"hunter2")}}),
        )
    }

    /// A binding's subjects as stored (empty when it is gone)
    pub fn subjects(&self, res: Res, ns: &str, name: &str) -> Vec<Value> {
        self.get(res, ns, name)
            .and_then(|o| o.get("subjects"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a subject to a binding as another client would (a write: the version moves)
    pub fn add_subject(&mut self, res: Res, ns: &str, name: &str, subject: Value) {
        let Some(mut o) = self.get(res, ns, name).cloned() else {
            panic!("no {} {ns}/{name} to add a subject to", res.kind());
        };
        match o["subjects"].as_array_mut() {
            Some(a) => a.push(subject),
            None => o["subjects"] = json!([subject]),
        }
        if let Err((code, s)) = self.update(res, ns, name, o) {
            panic!("adding a subject: {code} {s}");
        }
    }

    /// Deletes an object and creates it again with the same body (a new uid)
    pub fn recreate(&mut self, res: Res, ns: &str, name: &str) -> String {
        let Some(mut o) = self.get(res, ns, name).cloned() else {
            panic!("no {} {ns}/{name} to re-create", res.kind());
        };
        if let Err((code, s)) = self.delete(res, ns, name, None) {
            panic!("deleting: {code} {s}");
        }
        if let Some(m) = o["metadata"].as_object_mut() {
            for k in ["uid", "resourceVersion", "creationTimestamp"] {
                m.remove(k);
            }
        }
        self.seed(res, ns, o)
    }
}

fn ns_of(res: Res, namespace: &str) -> String {
    if res.namespaced() {
        namespace.to_string()
    } else {
        String::new()
    }
}

/// `kind` and `apiVersion`, when the body has them, must be the resource's
fn check_type(res: Res, obj: &Value) -> Result<(), Refusal> {
    for (field, want) in [("kind", res.kind()), ("apiVersion", res.api_version())] {
        if let Some(v) = obj.get(field).and_then(Value::as_str) {
            if v != want {
                return Err(bad_request(&format!(
                    "the API version in the data ({}) does not match the expected API version ({})",
                    obj.get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    res.api_version()
                )));
            }
        }
    }
    Ok(())
}

/// The fields the API server requires of a binding (roleRef; every subject's kind and name)
fn validate(res: Res, name: &str, obj: &Value) -> Result<(), Refusal> {
    if !matches!(res, Res::ClusterRoleBinding | Res::RoleBinding) {
        return Ok(());
    }
    let rr = obj.get("roleRef");
    let rr_field = |f: &str| {
        rr.and_then(|r| r.get(f))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if rr_field("name").is_empty() {
        return Err(invalid(res, name, "roleRef.name", "Required value"));
    }
    let kinds: &[&str] = if res == Res::RoleBinding {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&rr_field("kind")) {
        return Err(invalid(
            res,
            name,
            "roleRef.kind",
            &format!("Unsupported value: {:?}", rr_field("kind")),
        ));
    }
    if let Some(subs) = obj.get("subjects") {
        let Some(subs) = subs.as_array() else {
            return Err(bad_request("subjects: expected an array"));
        };
        for (i, s) in subs.iter().enumerate() {
            let f = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default();
            if f("name").is_empty() {
                return Err(invalid(
                    res,
                    name,
                    &format!("subjects[{i}].name"),
                    "Required value",
                ));
            }
            if !["User", "Group", "ServiceAccount"].contains(&f("kind")) {
                return Err(invalid(
                    res,
                    name,
                    &format!("subjects[{i}].kind"),
                    &format!("Unsupported value: {:?}", f("kind")),
                ));
            }
            if f("kind") == "ServiceAccount" && f("namespace").is_empty() {
                return Err(invalid(
                    res,
                    name,
                    &format!("subjects[{i}].namespace"),
                    "Required value",
                ));
            }
        }
    }
    Ok(())
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// An RFC 6901 pointer's tokens (`~1` is `/`, `~0` is `~`)
fn pointer_tokens(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid pointer {path:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// The container holding the last token of `path`, and that token
fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = pointer_tokens(path)?;
    let last = tokens
        .pop()
        .ok_or_else(|| format!("doc is missing path: {path:?}"))?;
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {path:?}: missing value"))?;
    }
    Ok((cur, last))
}

/// One RFC 6902 operation (add, remove, replace, test), in place; the error in words
fn json_patch_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{kind} operation has no path"))?;
    let missing =
        || format!("{kind} operation does not apply: doc is missing path: {path:?}: missing value");
    match kind {
        "test" => {
            let want = op.get("value").cloned().unwrap_or(Value::Null);
            let tokens = pointer_tokens(path)?;
            let pointer = tokens
                .iter()
                .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                .collect::<String>();
            match doc.pointer(&pointer) {
                Some(v) if *v == want => Ok(()),
                _ => Err(format!("testing value {path} failed: test failed")),
            }
        }
        "remove" => {
            let (p, last) = parent(doc, path)?;
            match p {
                Value::Object(m) => m.remove(&last).map(|_| ()).ok_or_else(missing),
                Value::Array(a) => match last.parse::<usize>() {
                    Ok(i) if i < a.len() => {
                        a.remove(i);
                        Ok(())
                    }
                    _ => Err(missing()),
                },
                _ => Err(missing()),
            }
        }
        "add" | "replace" => {
            let value = op
                .get("value")
                .cloned()
                .ok_or_else(|| format!("{kind} operation has no value"))?;
            let (p, last) = parent(doc, path)?;
            match p {
                Value::Object(m) => {
                    if kind == "replace" && !m.contains_key(&last) {
                        return Err(missing());
                    }
                    m.insert(last, value);
                    Ok(())
                }
                Value::Array(a) => {
                    let i = if last == "-" && kind == "add" {
                        a.len()
                    } else {
                        last.parse::<usize>().map_err(|_| missing())?
                    };
                    match kind {
                        "add" if i <= a.len() => {
                            a.insert(i, value);
                            Ok(())
                        }
                        "replace" if i < a.len() => {
                            a[i] = value;
                            Ok(())
                        }
                        _ => Err(missing()),
                    }
                }
                _ => Err(missing()),
            }
        }
        other => Err(format!("unexpected kind of operation: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_json_patch_applies_all_or_nothing() {
        let mut w = World::default();
        w.cluster_role_binding("b", "view", &[user("a"), user("b")]);
        let rv = |w: &World| {
            w.get(Res::ClusterRoleBinding, "", "b")
                .map(|o| o["metadata"]["resourceVersion"].clone())
        };
        let before = rv(&w);
        let failed = w
            .patch(
                Res::ClusterRoleBinding,
                "",
                "b",
                &json!([{"op": "remove", "path": "/subjects/0"},
                        {"op": "test", "path": "/subjects/0", "value": user("a")}]),
            )
            .expect_err("the test fails after the remove");
        assert_eq!(failed.0, 422);
        assert_eq!(failed.1["reason"], "Invalid");
        assert_eq!(
            w.subjects(Res::ClusterRoleBinding, "", "b").len(),
            2,
            "nothing changed"
        );
        assert_eq!(rv(&w), before);
        let o = w
            .patch(
                Res::ClusterRoleBinding,
                "",
                "b",
                &json!([{"op": "test", "path": "/subjects/1", "value": user("b")},
                        {"op": "remove", "path": "/subjects/1"},
                        {"op": "add", "path": "/subjects/-", "value": user("c")},
                        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
                        {"op": "replace", "path": "/metadata/labels/x", "value": "z"}]),
            )
            .expect("applied");
        assert_eq!(o["subjects"], json!([user("a"), user("c")]));
        assert_eq!(o["metadata"]["labels"], json!({"x": "z"}));
        assert_ne!(rv(&w), before);
        for bad in [
            json!([{"op": "remove", "path": "/subjects/9"}]),
            json!([{"op": "replace", "path": "/metadata/nothing", "value": 1}]),
            json!([{"op": "move", "from": "/a", "path": "/b"}]),
            json!([{"op": "replace", "path": "/roleRef/name", "value": "admin"}]),
        ] {
            assert_eq!(
                w.patch(Res::ClusterRoleBinding, "", "b", &bad)
                    .expect_err("refused")
                    .0,
                422,
                "{bad}"
            );
        }
        assert_eq!(
            w.patch(Res::ClusterRoleBinding, "", "gone", &json!([]))
                .expect_err("404")
                .0,
            404
        );
    }

    use super::*;

    #[test]
    fn every_write_moves_the_version_and_a_stale_one_is_a_conflict() {
        let mut w = World::default();
        let uid = w.cluster_role_binding("b", "view", &[user("ivan")]);
        let o = w
            .get(Res::ClusterRoleBinding, "", "b")
            .cloned()
            .expect("stored");
        let rv = o["metadata"]["resourceVersion"].clone();
        w.add_subject(Res::ClusterRoleBinding, "", "b", user("dana"));
        let err = w
            .update(Res::ClusterRoleBinding, "", "b", o.clone())
            .expect_err("stale");
        assert_eq!(err.0, 409);
        assert_eq!(err.1["reason"], "Conflict");
        let now = w
            .get(Res::ClusterRoleBinding, "", "b")
            .cloned()
            .expect("stored");
        assert_ne!(now["metadata"]["resourceVersion"], rv);
        assert_eq!(now["metadata"]["uid"], json!(uid));
        // a no-op update keeps the version
        let (same, _) = w
            .update(Res::ClusterRoleBinding, "", "b", now.clone())
            .expect("ok");
        assert_eq!(
            same["metadata"]["resourceVersion"],
            now["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn delete_preconditions_and_not_found() {
        let mut w = World::default();
        let uid = w.role_binding("ns", "b", "edit", &[user("ivan")]);
        let bad = json!({"preconditions": {"uid": "nope"}});
        let e = w
            .delete(Res::RoleBinding, "ns", "b", Some(&bad))
            .expect_err("uid");
        assert_eq!(e.0, 409);
        assert!(e.1["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Precondition failed: UID"));
        let bad = json!({"preconditions": {"uid": uid, "resourceVersion": "0"}});
        assert_eq!(
            w.delete(Res::RoleBinding, "ns", "b", Some(&bad))
                .expect_err("rv")
                .0,
            409
        );
        let ok = w.delete(
            Res::RoleBinding,
            "ns",
            "b",
            Some(&json!({"preconditions": {"uid": uid}})),
        );
        assert_eq!(ok.expect("deleted")["status"], "Success");
        let e = w
            .delete(Res::RoleBinding, "ns", "b", None)
            .expect_err("gone");
        assert_eq!((e.0, e.1["reason"].as_str()), (404, Some("NotFound")));
    }

    #[test]
    fn a_put_with_a_version_never_recreates_and_without_one_does_for_rbac() {
        let mut w = World::default();
        w.cluster_role_binding("b", "view", &[user("ivan")]);
        let o = w
            .get(Res::ClusterRoleBinding, "", "b")
            .cloned()
            .expect("stored");
        w.delete(Res::ClusterRoleBinding, "", "b", None)
            .expect("deleted");
        assert_eq!(
            w.update(Res::ClusterRoleBinding, "", "b", o.clone())
                .expect_err("gone")
                .0,
            404
        );
        let mut blind = o;
        blind["metadata"]
            .as_object_mut()
            .map(|m| m.remove("resourceVersion"));
        blind["metadata"].as_object_mut().map(|m| m.remove("uid"));
        assert!(
            w.update(Res::ClusterRoleBinding, "", "b", blind)
                .expect("created")
                .1
        );
    }

    #[test]
    fn token_secrets_get_their_service_accounts_uid_and_go_with_it() {
        let mut w = World::default();
        let sa = w.service_account("ci", "deployer", &[("revoked.dev/owner", "ivan")]);
        w.token_secret("ci", "deployer-token", "deployer");
        let s = w
            .get(Res::Secret, "ci", "deployer-token")
            .cloned()
            .expect("stored");
        assert_eq!(
            s["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
            json!(sa)
        );
        assert!(s["data"]["token"].is_string());
        w.delete(Res::ServiceAccount, "ci", "deployer", None)
            .expect("deleted");
        assert!(w.get(Res::Secret, "ci", "deployer-token").is_none());
    }
}
