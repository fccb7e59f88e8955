// Package tenant is the tenant model shared by the platform emulators (GAuth,
// GWS): contact centers, persons, DNs, callback services, Click-to-Call-In
// groups, agent groups, OAuth clients and Engagement API keys, stored in
// PostgreSQL schema "tenant". Other services never import it: they read the
// model through the GAuth and GWS HTTP APIs.
//
// # Seeds
//
// A seed is YAML (unknown keys are errors); Store.Apply upserts it by natural
// key, so applying it twice changes nothing. The embedded demo seed
// (seeds/demo.yaml) is applied on first start; testdata/second.yaml is a
// second tenant used by tests. Shape:
//
//	contactCenters:
//	  - id: 9350e2fc-a1dd-4c65-8d40-1f75a2e080dd   # CCID, a UUID
//	    name: demo                                  # the "tenant" in tenant\username logins
//	    sipDomain: demo.cxlab.local
//	    environmentId: cxlab-env                    # default cxlab-env
//	    options: {general-settings: {countryCode: US}}   # section -> option -> value
//	    users:
//	      - {dbid: 101, userName: agent1, password: agent123, firstName: Ada, lastName: Agent,
//	         roles: [agent], dn: "7001", skills: [VQ_Sales]}   # dbid 0 = allocate; disabled: true
//	    dns: [{number: "7001", type: Extension, sipPassword: dnpass}]
//	    callbackServices:
//	      - name: CB_Sales
//	        virtualQueue: VQ_Sales
//	        timeZone: America/New_York
//	        businessHours:                          # or the scalar 24x7
//	          weekly: {mon: [{open: "08:00", close: "20:00"}]}   # mon..sun, absent day = closed
//	          holidays: ["2026-12-25"]
//	        slotDurationMin: 15
//	        capacityPerSlot: 10
//	        immediateEnabled: true
//	        scheduledEnabled: true
//	        maxDialAttempts: 3
//	        retryDelaySec: 30
//	        dialInNumber: "+18005550100"
//	    callinGroups: [{name: technical_help, accessNumber: "+18005550199", accessCodeEnabled: true, expirySec: 600, virtualQueue: VQ_Support}]
//	    agentGroups: [{name: Sales, members: [agent1], userProperties: {routing: {virtualQueue: VQ_Sales}}}]
//	    apiKeys: [{key: cxlab-demo-api-key-0000000000000000, description: demo}]
//	clients:
//	  - clientId: ges_client
//	    secret: ges-secret
//	    grantTypes: [client_credentials, authorization_code, refresh_token]
//	    redirectUris: ["/ges/*"]     # absolute URI or loopback path; a trailing * matches a prefix
//	    accessTokenTTLSec: 43200     # default 43200
//	    refreshTokenTTLSec: 2592000  # default 30 days
//	    authorities: [ROLE_INTERNAL_CLIENT]
//	    scopes: ["*"]                # default ["*"]
//	    contactCenterId: ""          # set to bind the client (and its tokens) to one tenant
//
// Passwords and client secrets are stored as bcrypt hashes (see SecretCost);
// DN SIP passwords are stored in clear because SIP digest needs them.
package tenant
