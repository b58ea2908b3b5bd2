//! Who may call what: the local control socket, or a manager certificate.

use swarm_pki::{AuthError, require_manager};
use tonic::{Request, Status};

/// Marks requests that arrived on the manager's local unix socket (set by
/// the socket server's interceptor; the TLS listener never sets it).
#[derive(Debug, Clone, Copy)]
pub struct LocalSocket;

/// Interceptor for the local socket server: marks each request.
pub fn mark_local(mut req: Request<()>) -> Result<Request<()>, Status> {
    req.extensions_mut().insert(LocalSocket);
    Ok(req)
}

/// Interceptor requiring a manager certificate (raft, membership).
pub fn manager_only(req: Request<()>) -> Result<Request<()>, Status> {
    require_manager(&req).map_err(Status::from)?;
    Ok(req)
}

/// Control API calls: allowed on the local socket, or with a manager
/// certificate; worker certificates and anonymous callers are refused.
pub fn authorize_control<T>(req: &Request<T>) -> Result<(), Status> {
    if req.extensions().get::<LocalSocket>().is_some() {
        return Ok(());
    }
    require_manager(req).map(drop).map_err(|e: AuthError| {
        Status::permission_denied(format!(
            "the control API needs a manager certificate or the local socket: {e}"
        ))
    })
}
