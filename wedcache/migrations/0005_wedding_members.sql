-- 0005_wedding_members: wedcache's addition for GDPR deletion by user
-- (CacheSecurityManager.handle_data_deletion_request with a userId). No cache entry records a
-- user and the source document's schema links no user to a wedding; the product records here
-- who a wedding's data subjects are (the couple, their planners), so a user's deletion request
-- reaches the entries of every wedding they belong to. user_id is the product's user id (as
-- the API's userId: a UUID, or a name mapped to one like every wedcache id).
CREATE TABLE wedding_members (
  wedding_id UUID NOT NULL REFERENCES weddings(id) ON DELETE CASCADE,
  user_id UUID NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  PRIMARY KEY (wedding_id, user_id)
);

CREATE INDEX wedding_members_user_idx ON wedding_members (user_id);
