// proxy/access: who may be served what. The appliance answers for upstream registries whose
// access control it does not know, so it never decides access itself; it remembers what upstream
// decided, per client, for a short while:
//  - ClientIdentity (identity.hpp): a client as the upstream knows it, by a keyed hash of the
//    credentials it presented. Credentials are never kept or logged, only their hash.
//  - TokenBook (token_book.hpp): the tokens clients got through the appliance's token endpoint
//    (the realm every challenge names, see challenges.hpp), so that a token is known to stand for
//    the credentials it was issued for; and the tokens the appliance issues itself while the real
//    token service cannot be reached.
//  - RepositoryAccess (repository_access.hpp): which repositories anonymous access can read
//    (public: cached content is served to anyone), and which clients upstream has let read which
//    other repositories, remembered for at most a token's lifetime or 5 minutes.
//  - challenges.hpp: the WWW-Authenticate challenges clients are shown, with each Bearer realm
//    pointed at the appliance's own token endpoint.
#pragma once
