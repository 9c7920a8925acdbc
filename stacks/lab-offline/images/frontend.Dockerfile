# The lab's frontend on the offline base: Debian's nginx with stacks/lab/nginx/default.conf and
# the page bundled on this machine by stacks/lab/frontend/build.mjs (npm ci from the lock file).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN rm -f /etc/nginx/sites-enabled/default \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
COPY default.conf /etc/nginx/conf.d/default.conf
COPY html /usr/share/nginx/html
RUN nginx -t
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
