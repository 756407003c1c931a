//! `admin add|list|remove|passwd`: the admin users, with the server stopped.

use super::AdminAction;
use crate::store::Store;

pub(super) async fn run(store: &Store, action: AdminAction) -> Result<(), String> {
    use crate::passwords::set_user;
    match action {
        AdminAction::Add { username, password_stdin } => {
            if store.admin(&username).map_err(|e| e.to_string())?.is_some() {
                return Err(format!("admin user {username} already exists (use `admin passwd`)"));
            }
            let pw = read_password(password_stdin)?;
            set_user(store, &username, &pw, "ADMIN").await.map_err(|e| e.to_string())?;
            eprintln!("admin user {username} added");
        }
        AdminAction::Passwd { username, password_stdin } => {
            let Some(user) = store.admin(&username).map_err(|e| e.to_string())? else {
                return Err(format!("no admin user {username}"));
            };
            let pw = read_password(password_stdin)?;
            set_user(store, &username, &pw, &user.role).await.map_err(|e| e.to_string())?;
            eprintln!("password of {username} changed");
        }
        AdminAction::List => {
            for u in store.admins().map_err(|e| e.to_string())? {
                println!("{}\t{}\t{}", u.username, u.role, crate::clock::iso_ms(u.created_ms));
            }
        }
        AdminAction::Remove { username } => {
            if !store.remove_admin(&username).await.map_err(|e| e.to_string())? {
                return Err(format!("no admin user {username}"));
            }
            eprintln!("admin user {username} removed");
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read the password: {e}"))?;
    let again =
        rpassword::prompt_password("Repeat password: ").map_err(|e| format!("cannot read the password: {e}"))?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}
